--[[ set_paused: pause or resume a service queue. A paused service keeps its jobs queued and
claimers skip it; resuming wakes a claimer of each requirement class in which work waits.
KEYS[1]  paused      KEYS[2]  marker:<svc>    KEYS[3]  q:<svc>    KEYS[4]  services
KEYS[5]  lastreq     (request id of the last change of each target)
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  service     ARGV[4]  '1' to pause, '0' to resume
ARGV[5]  request id (random per call; the same in a resend)
ARGV[6]  '1' if the caller's settings register the service, else '0'
ARGV[7]  who asked (optional): on the event and in lastreq as 'by:paused:<svc>'
Returns 1 if the state changed, 0 if it already was so, -1 (nothing written) for a service
neither registered by the caller nor ever submitted to: the services set is permanent and the
reaper visits each member every pass, so it takes no arbitrary names.
(A resend of a change that was applied, its reply lost, answers 1 again.)
]]
--@include common
local svc = ARGV[3]
if ARGV[6] ~= '1' and redis.call('SISMEMBER', KEYS[4], svc) == 0 then return -1 end
local field = 'paused:' .. svc
local by = ARGV[7] or ''
local function unchanged()
  if redis.call('HGET', KEYS[5], field) == ARGV[5] then return 1 end
  return 0
end
redis.call('SADD', KEYS[4], svc)
if ARGV[4] == '1' then
  if redis.call('SADD', KEYS[1], svc) == 0 then return unchanged() end
  redis.call('HSET', KEYS[5], field, ARGV[5], 'by:' .. field, by)
  redis.call('DEL', KEYS[2])
  for _, cls in ipairs(classes_of(svc)) do redis.call('DEL', k_cmarker(svc, cls)) end
  emit('paused', '', svc, {'by', by})
  return 1
end
if redis.call('SREM', KEYS[1], svc) == 0 then return unchanged() end
redis.call('HSET', KEYS[5], field, ARGV[5], 'by:' .. field, by)
if redis.call('ZCARD', KEYS[3]) > 0 or redis.call('ZCARD', k_delayed(svc)) > 0 then
  redis.call('ZADD', KEYS[2], 0, '0')
end
for _, cls in ipairs(classes_of(svc)) do
  if redis.call('ZCARD', k_cqueue(svc, cls)) > 0 then wake(svc, cls) end
end
emit('resumed', '', svc, {'by', by})
return 1
