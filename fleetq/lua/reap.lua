--[[ reap: recover jobs whose lease expired (their puller died or lost Redis) and prune finished
jobs past their retention. Runs in every supervisor; a short lock makes it single-flight.
An expired lease requeues the job without charging an attempt (the worker vanished, not the job
failed) but counts it in 'lost'; after max_lost losses the job fails, so a job that kills its
worker every time cannot loop forever. A job whose cancel was requested ends cancelled.
After an outage (no pass for gap_ms, e.g. Redis itself was down) reaping waits grace_ms, so
live pullers can renew their leases first.
KEYS[1]  leases      KEYS[2]  reaper:lock    KEYS[3]  reaper:last    KEYS[4]  reaper:grace
KEYS[5]  services
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  owner (lock value)                  ARGV[4]  lock_ms
ARGV[5]  batch (max leases handled per pass) ARGV[6]  max_lost
ARGV[7]  retention_ms                        ARGV[8]  gap_ms      ARGV[9]  grace_ms
Returns {'busy'} | {'grace', until_ms} | {'done', requeued, failed, cancelled, pruned}
]]
--@include common
if not redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then return {'busy'} end
local now = now_ms()
local last = redis.call('GET', KEYS[3])
redis.call('SET', KEYS[3], now)
if last and now - tonumber(last) > tonumber(ARGV[8]) then
  local grace_until = now + tonumber(ARGV[9])
  redis.call('SET', KEYS[4], grace_until, 'PX', ARGV[9])
  return {'grace', grace_until}
end
local grace = redis.call('GET', KEYS[4])
if grace then return {'grace', grace} end
local retention = tonumber(ARGV[7])
local max_lost = tonumber(ARGV[6])
local requeued, failed, cancelled = 0, 0, 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
for _, id in ipairs(expired) do
  local jkey = k_job(id)
  local f = redis.call('HMGET', jkey, 'state', 'service', 'cancel_requested', 'host', 'gpu')
  if f[1] ~= 'running' then
    redis.call('ZREM', KEYS[1], id)
  else
    local svc = f[2]
    local where = (f[4] or '?') .. ':' .. (f[5] or '?')
    if f[3] == '1' then
      finish(id, jkey, svc, 'cancelled', now, retention)
      close_attempt(jkey, now, 'cancelled', 'lease expired on ' .. where)
      emit('cancelled', id, svc, {'reason', 'lease expired on ' .. where})
      job_emit(id, 'cancelled', {})
      cancelled = cancelled + 1
    else
      local lost = redis.call('HINCRBY', jkey, 'lost', 1)
      local reason = 'lease expired on ' .. where .. ' (worker lost ' .. lost .. ' time(s))'
      if lost >= max_lost then
        redis.call('HSET', jkey, 'error', cjson.encode({type = 'LeaseLost', message = reason,
          kind = 'infra'}))
        finish(id, jkey, svc, 'failed', now, retention)
        close_attempt(jkey, now, 'failed', reason)
        emit('failed', id, svc, {'reason', reason})
        job_emit(id, 'failed', {'reason', reason})
        failed = failed + 1
      else
        leave_running(id, svc)
        close_attempt(jkey, now, 'lost', reason)
        enqueue(id, jkey, svc, now)
        emit('requeued', id, svc, {'reason', reason})
        job_emit(id, 'requeued', {'reason', reason})
        requeued = requeued + 1
      end
    end
  end
end
local pruned = 0
for _, svc in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  for _, state in ipairs({'completed', 'failed', 'cancelled'}) do
    pruned = pruned + redis.call('ZREMRANGEBYSCORE', k_ended(svc, state), '-inf',
      now - retention)
  end
end
return {'done', requeued, failed, cancelled, pruned}
