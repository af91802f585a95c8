--[[ status (read only): selected fields of one job plus its queue position.
KEYS[1]  job:<id>
ARGV[1]  key prefix  ARGV[2]  event stream cap (unused)
ARGV[3]  job id      ARGV[4..] field names to read
Returns {position or -1, value of each field..., canonical requirements of its class or ''}
      | {'missing'}
]]
--@include common
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
local f = redis.call('HMGET', KEYS[1], 'state', 'service', 'class')
if not f[1] then return {'missing'} end
local pos = -1
if f[1] == 'queued' then pos = position_of(ARGV[3], f[2]) end
local out = {pos}
local values = redis.call('HMGET', KEYS[1], unpack(fields))
for i = 1, #fields do out[#out + 1] = values[i] end
local canonical = ''
if f[3] and f[3] ~= '' then canonical = redis.call('HGET', k_classes(f[2]), f[3]) or '' end
out[#out + 1] = canonical
return out
