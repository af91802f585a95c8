--[[ set_drained: drain or undrain a whole host (target 'host') or one GPU ('host:gpu').
A drained target claims nothing; running jobs finish normally. The host's supervisor is
signalled, so its idle claimers see the change at once instead of at their next wake-up.
KEYS[1]  drained     KEYS[2]  lastreq (request id of the last change of each target)
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  target      ARGV[4]  '1' to drain, '0' to undrain
ARGV[5]  request id (random per call; the same in a resend)
ARGV[6]  who asked (optional): on the event and in lastreq as 'by:drained:<target>'
Returns 1 if the state changed, 0 if it already was so.
(A resend of a change that was applied, its reply lost, answers 1 again.)
]]
--@include common
local target = ARGV[3]
local field = 'drained:' .. target
local by = ARGV[6] or ''
local host = string.match(target, '^[^:]+')
local function unchanged()
  if redis.call('HGET', KEYS[2], field) == ARGV[5] then return 1 end
  return 0
end
if ARGV[4] == '1' then
  if redis.call('SADD', KEYS[1], target) == 0 then return unchanged() end
  redis.call('HSET', KEYS[2], field, ARGV[5], 'by:' .. field, by)
  emit('drained', '', '', {'target', target, 'by', by})
  signal(host, 'gate')
  return 1
end
if redis.call('SREM', KEYS[1], target) == 0 then return unchanged() end
redis.call('HSET', KEYS[2], field, ARGV[5], 'by:' .. field, by)
emit('undrained', '', '', {'target', target, 'by', by})
signal(host, 'gate')
return 1
