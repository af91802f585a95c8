--[[ bump: change the priority of a queued job. O(log n). Without fair share its submit order
is kept, so among jobs of equal priority it keeps its place; with fair share it is tagged again
in the new band (its tenant's turn there, after the tenant's jobs already in that band).
KEYS[1]  job:<id>
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  job id      ARGV[4]  new priority (-1000..1000)
ARGV[5]  request id (random per call; the same in a resend), or ''
ARGV[6]  who asked (optional, for the event log and the job's own stream)
Returns {'ok', old_priority, position or -1} | {'missing'} | {'state', state}
(A resend of a bump that was applied, its reply lost, answers 'ok' again, even if the job was
claimed meanwhile.)
]]
--@include common
local id, priority = ARGV[3], tonumber(ARGV[4])
local f = redis.call('HMGET', KEYS[1], 'state', 'service', 'priority', 'seq', 'bump_request')
if not f[1] then return {'missing'} end
local resend = ARGV[5] and ARGV[5] ~= '' and f[5] == ARGV[5]
if f[1] ~= 'queued' then
  if resend then return {'ok', f[3], -1} end
  return {'state', f[1]}
end
-- A resend finds its change made: answer again without a second entry in the timeline.
if resend then return {'ok', f[3], position_of(id, f[2])} end
local svc = f[2]
redis.call('HSET', KEYS[1], 'priority', priority)
if ARGV[5] and ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'bump_request', ARGV[5]) end
fair_retag(KEYS[1], svc, priority)
redis.call('ZADD', k_cqueue(svc, class_of(id)), 'XX', queue_score(priority, job_order(KEYS[1])),
  id)
local by = ARGV[6] or ''
emit('bumped', id, svc, {'from', f[3], 'to', tostring(priority), 'by', by})
job_emit(id, 'bumped', {'from', f[3], 'to', tostring(priority), 'by', by})
return {'ok', f[3], position_of(id, svc)}
