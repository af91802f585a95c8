--[[ renew: extend a running job's lease (the puller's heartbeat) and record its progress.
KEYS[1]  job:<id>    KEYS[2]  leases
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  job id      ARGV[4]  lease token     ARGV[5]  lease_ms
ARGV[6]  progress 0..1, or '' to leave it     ARGV[7]  progress text
Returns {'ok', cancel_requested 0|1} | {'stale', state or 'missing'}
]]
--@include common
local id = ARGV[3]
local f = redis.call('HMGET', KEYS[1], 'state', 'token', 'service', 'cancel_requested')
if f[1] ~= 'running' or f[2] ~= ARGV[4] then return {'stale', f[1] or 'missing'} end
local now = now_ms()
local lease_ms = tonumber(ARGV[5])
redis.call('ZADD', KEYS[2], now + lease_ms, id)
redis.call('HSET', KEYS[1], 'lease_until_ms', now + lease_ms)
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'progress', ARGV[6], 'progress_text', ARGV[7])
  emit('progress', id, f[3], {'progress', ARGV[6], 'text', ARGV[7]})
  job_emit(id, 'progress', {'progress', ARGV[6], 'text', ARGV[7]})
end
if f[4] == '1' then return {'ok', 1} end
return {'ok', 0}
