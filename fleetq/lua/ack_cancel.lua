--[[ ack_cancel: the owning puller interrupted a running job; finish it as cancelled.
KEYS[1]  job:<id>    KEYS[2]  leases
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  job id      ARGV[4]  lease token     ARGV[5]  retention_ms
Returns {'cancelled'} | {'stale', state or 'missing'}
]]
--@include common
local id = ARGV[3]
local f = redis.call('HMGET', KEYS[1], 'state', 'token', 'service')
if f[1] ~= 'running' or f[2] ~= ARGV[4] then
  if replayed(KEYS[1], ARGV[4]) == 'cancelled' then return {'cancelled'} end
  return {'stale', f[1] or 'missing'}
end
local now = now_ms()
finish(id, KEYS[1], f[3], 'cancelled', now, tonumber(ARGV[5]))
close_attempt(KEYS[1], now, 'cancelled', '')
remember_finish(KEYS[1], ARGV[4], 'cancelled')
emit('cancelled', id, f[3], {})
job_emit(id, 'cancelled', {})
return {'cancelled'}
