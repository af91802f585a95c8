--[[ fail: a running job hit an error; retry it, requeue it, or fail it for good.
kind 'job'   : a fault of the job; charges an attempt, retries after backoff_ms while attempts
               remain, otherwise fails.
kind 'final' : a fault of the job that retrying cannot fix (validation error); charges and fails.
kind 'infra' : a fault of the GPU, the backend or the supervisor (or a graceful drain); requeues
               the job at its place without charging an attempt, but counts it in 'infra':
               after max_infra such faults the job fails, so a job that breaks every backend
               it touches cannot circle the fleet forever.
A job whose cancel was requested ends cancelled whatever the kind.
KEYS[1]  job:<id>    KEYS[2]  leases
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  job id      ARGV[4]  lease token     ARGV[5]  kind
ARGV[6]  error (JSON {type, message, node?, ...})
ARGV[7]  backoff_ms before the retry          ARGV[8]  retention_ms (if it ends)
ARGV[9]  max_infra (infrastructure faults before the job fails)
Returns {'failed'} | {'retrying', ready_ms} | {'requeued'} | {'cancelled'}
      | {'stale', state or 'missing'}
]]
--@include common
local id, kind, err = ARGV[3], ARGV[5], ARGV[6]
local jkey = KEYS[1]
local f = redis.call('HMGET', jkey, 'state', 'token', 'service', 'cancel_requested',
  'attempts', 'max_attempts')
if f[1] ~= 'running' or f[2] ~= ARGV[4] then
  local again = replayed(jkey, ARGV[4])
  if again and again ~= 'completed' then return {again} end
  return {'stale', f[1] or 'missing'}
end
local svc = f[3]
local now = now_ms()
local retention = tonumber(ARGV[8])
local message = ''
local ok, decoded = pcall(cjson.decode, err)
if ok and type(decoded) == 'table' and decoded['message'] then message = decoded['message'] end
if f[4] == '1' then
  finish(id, jkey, svc, 'cancelled', now, retention)
  close_attempt(jkey, now, 'cancelled', message)
  emit('cancelled', id, svc, {})
  job_emit(id, 'cancelled', {})
  remember_finish(jkey, ARGV[4], 'cancelled')
  return {'cancelled'}
end
redis.call('HSET', jkey, 'error', err)
if kind == 'infra' and redis.call('HINCRBY', jkey, 'infra', 1) < tonumber(ARGV[9]) then
  leave_running(id, svc)
  close_attempt(jkey, now, 'requeued', message)
  enqueue(id, jkey, svc, now)
  emit('requeued', id, svc, {'reason', message})
  job_emit(id, 'requeued', {'reason', message})
  remember_finish(jkey, ARGV[4], 'requeued')
  return {'requeued'}
end
local attempts = tonumber(f[5])
if kind == 'infra' then
  message = message .. ' (gave up after ' .. ARGV[9] .. ' faults of GPUs or backends)'
  if ok and type(decoded) == 'table' then
    decoded['message'] = message
    redis.call('HSET', jkey, 'error', cjson.encode(decoded))
  end
else
  attempts = redis.call('HINCRBY', jkey, 'attempts', 1)
end
if kind == 'job' and attempts < tonumber(f[6]) then
  local ready = now + tonumber(ARGV[7])
  leave_running(id, svc)
  close_attempt(jkey, now, 'retrying', message)
  tenant_move(jkey, svc, 'running', 'queued')
  redis.call('HSET', jkey, 'state', 'queued', 'ready_ms', ready, 'progress', '0',
    'progress_text', '')
  redis.call('HDEL', jkey, 'token', 'lease_until_ms', 'host', 'gpu')
  redis.call('ZADD', k_delayed(svc), ready, id)
  redis.call('ZADD', k_waiting(svc), redis.call('HGET', jkey, 'enqueued_ms') or now, id)
  wake(svc)  -- the plain service marker: any claimer of the service promotes due retries
  emit('retrying', id, svc, {'attempt', tostring(attempts), 'reason', message})
  job_emit(id, 'retrying', {'reason', message})
  remember_finish(jkey, ARGV[4], 'retrying')
  return {'retrying', ready}
end
finish(id, jkey, svc, 'failed', now, retention)
close_attempt(jkey, now, 'failed', message)
emit('failed', id, svc, {'reason', message})
job_emit(id, 'failed', {'reason', message})
remember_finish(jkey, ARGV[4], 'failed')
return {'failed'}
