--[[ retry: an operator sends a failed or cancelled job back to its queue with fresh attempts.
It keeps its priority and its place in the band (submit order, or its fair-share tag while the
band has not gone idle since; see lib/fair.lua); its wait clock restarts now.
KEYS[1]  job:<id>
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  job id      ARGV[4]  request id (random per call; the same in a resend)
ARGV[5]  who asked (optional, for the event log and the job's own stream)
Returns {'ok', position} | {'missing'} | {'state', state}
(A resend of a retry that was applied, its reply lost, answers {'ok', position} again.)
]]
--@include common
local id = ARGV[3]
local jkey = KEYS[1]
local f = redis.call('HMGET', jkey, 'state', 'service', 'idem', 'retry_request')
if not f[1] then return {'missing'} end
if f[1] ~= 'failed' and f[1] ~= 'cancelled' then
  if f[4] == ARGV[4] then return {'ok', position_of(id, f[2])} end
  return {'state', f[1]}
end
local svc = f[2]
local now = now_ms()
-- The outputs go first: a role that may not write out:* (a client) is refused before this
-- script changed anything, since Redis does not roll back a script that fails half way.
redis.call('DEL', k_out(id))
redis.call('ZREM', k_ended(svc, f[1]), id)
redis.call('PERSIST', jkey)
redis.call('PERSIST', k_jobev(id))
redis.call('PERSIST', k_in(id))
if f[3] and f[3] ~= '' then redis.call('PERSIST', k_idem(f[3])) end
redis.call('HSET', jkey, 'attempts', 0, 'lost', 0, 'infra', 0, 'enqueued_ms', now,
  'retry_request', ARGV[4])
redis.call('HDEL', jkey, 'finished_ms', 'outputs')
fair_rejoin(jkey, svc)
enqueue(id, jkey, svc, now)
local by = ARGV[5] or ''
emit('retried', id, svc, {'from', f[1], 'by', by})
job_emit(id, 'retried', {'by', by})
return {'ok', position_of(id, svc)}
