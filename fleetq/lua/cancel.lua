--[[ cancel: a client or operator cancels a job.
A queued (or delayed) job is removed from its queue and ends cancelled at once (the wake-up
marker of its requirement class goes too when its class queue is left empty). A running job is
marked; the owning puller sees the mark (on its job stream, which its supervisor reads when
signalled, and in every renew), interrupts the backend and acknowledges with ack_cancel. Cancelling a cancelled job is a no-op.
KEYS[1]  job:<id>    (a queued job's cancel touches only keys a client role may write)
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  job id      ARGV[4]  retention_ms    ARGV[5]  who asked (for the event log)
Returns {'cancelled'} | {'cancelling'} | {'terminal', state} | {'missing'}
]]
--@include common
local id = ARGV[3]
local f = redis.call('HMGET', KEYS[1], 'state', 'service', 'host')
if not f[1] then return {'missing'} end
local state, svc = f[1], f[2]
local now = now_ms()
if state == 'queued' then
  local cls = class_of(id)
  finish(id, KEYS[1], svc, 'cancelled', now, tonumber(ARGV[4]))
  -- A class queue this cancel emptied loses its wake-up marker, as one a claim empties does:
  -- a GPU able to run the class (one that gains it later, say) never wakes for a job that is
  -- gone. The plain marker stays: it also stands for retries falling due.
  if cls ~= '' and redis.call('ZCARD', k_cqueue(svc, cls)) == 0 then
    redis.call('DEL', k_cmarker(svc, cls))
  end
  emit('cancelled', id, svc, {'by', ARGV[5]})
  job_emit(id, 'cancelled', {'by', ARGV[5]})
  return {'cancelled'}
end
if state == 'running' then
  redis.call('HSET', KEYS[1], 'cancel_requested', '1')
  emit('cancel_requested', id, svc, {'by', ARGV[5]})
  job_emit(id, 'cancel_requested', {'by', ARGV[5]})
  if f[3] then signal(f[3], 'streams') end
  return {'cancelling'}
end
return {'terminal', state}
