--[[ bump_by: move a queued job's priority by a delta, atomically (two quick "+1" from
dashboards or CLIs both count). The result is clamped to -1000..1000. Its place in the new band is
as with bump (submit order, or a fair-share tag of its tenant in that band).
KEYS[1]  job:<id>
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  job id      ARGV[4]  delta (an integer)
ARGV[5]  who asked (optional, for the event log and the job's own stream)
ARGV[6]  request id (random per call; the same in a resend), or ''
Returns {'ok', old_priority, new_priority, position or -1} | {'missing'} | {'state', state}
(A resend of a change that was applied, its reply lost, is not applied twice: it answers as the
first did, with the position of now, or -1 if the job was claimed meanwhile.)
]]
--@include common
local id, delta = ARGV[3], tonumber(ARGV[4])
local request = ARGV[6] or ''
local f = redis.call('HMGET', KEYS[1], 'state', 'service', 'priority', 'seq', 'bump_request',
  'bump_from')
if not f[1] then return {'missing'} end
if request ~= '' and f[5] == request then
  local position = -1
  if f[1] == 'queued' then position = position_of(id, f[2]) end
  return {'ok', f[6], tonumber(f[3]), position}
end
if f[1] ~= 'queued' then return {'state', f[1]} end
local svc = f[2]
local priority = math.max(-1000, math.min(1000, (tonumber(f[3]) or 0) + delta))
redis.call('HSET', KEYS[1], 'priority', priority)
if request ~= '' then
  redis.call('HSET', KEYS[1], 'bump_request', request, 'bump_from', f[3])
end
fair_retag(KEYS[1], svc, priority)
redis.call('ZADD', k_cqueue(svc, class_of(id)), 'XX', queue_score(priority, job_order(KEYS[1])),
  id)
local by = ARGV[5] or ''
emit('bumped', id, svc, {'from', f[3], 'to', tostring(priority), 'by', by})
job_emit(id, 'bumped', {'from', f[3], 'to', tostring(priority), 'by', by})
return {'ok', f[3], priority, position_of(id, svc)}
