--[[ set_drained: drain or undrain a whole host (target 'host') or one GPU ('host:gpu').
A drained target claims nothing; running jobs finish normally.
KEYS[1]  drained
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  target      ARGV[4]  '1' to drain, '0' to undrain
Returns 1 if the state changed, 0 if it already was so.
]]
--@include common
local target = ARGV[3]
if ARGV[4] == '1' then
  if redis.call('SADD', KEYS[1], target) == 0 then return 0 end
  emit('drained', '', '', {'target', target})
  return 1
end
if redis.call('SREM', KEYS[1], target) == 0 then return 0 end
emit('undrained', '', '', {'target', target})
return 1
