--[[ eta (read only): what the ETA of a queued job is computed from (fleetq/eta.py).
KEYS[1]  job:<id>
ARGV[1]  key prefix  ARGV[2]  event stream cap (unused)
ARGV[3]  job id
Returns {'missing'} | {'not_queued', state}
      | {'queued', now_ms, service, class, service mean run ms or '',
         then per requirement class of the service (the job's own first):
         class, jobs ahead of the job in it, mean run ms or '', canonical requirements or ''}
A class's jobs ahead are those with a better score (priority band, then order) than the
job's; for the job's own class, its rank. A job waiting out a retry backoff is in no queue:
its class rank is -1. Cost: O(classes x log n), nothing grows with the queued jobs.
]]
--@include common
--@include runtimes
local f = redis.call('HMGET', KEYS[1], 'state', 'service', 'class')
if not f[1] then return {'missing'} end
if f[1] ~= 'queued' then return {'not_queued', f[1]} end
local svc, own = f[2], f[3] or ''
local function queue_of(cls)
  if cls == '' then return k_queue(svc) end
  return k_queue(svc) .. ':' .. cls
end
local runtimes = k_runtimes(svc)
local function mean_of(cls)
  return redis.call('HGET', runtimes, 'ms:' .. cls) or ''
end
local q = queue_of(own)
local score = redis.call('ZSCORE', q, ARGV[3])
local rank = -1
if score then rank = redis.call('ZRANK', q, ARGV[3]) end
local known = redis.call('HGETALL', P .. 'classes:' .. svc)
local canonical = {['']= ''}
local classes = {''}
for i = 1, #known, 2 do
  canonical[known[i]] = known[i + 1]
  classes[#classes + 1] = known[i]
end
local out = {'queued', now_ms(), svc, own, mean_of('*'), own, rank, mean_of(own),
             canonical[own] or ''}
for _, cls in ipairs(classes) do
  if cls ~= own then
    local ahead = 0
    if score then ahead = redis.call('ZCOUNT', queue_of(cls), '-inf', '(' .. score) end
    out[#out + 1] = cls
    out[#out + 1] = ahead
    out[#out + 1] = mean_of(cls)
    out[#out + 1] = canonical[cls]
  end
end
return out
