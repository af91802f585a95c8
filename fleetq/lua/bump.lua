--[[ bump: change the priority of a queued job. O(log n); its submit order is kept, so among
jobs of equal priority it keeps its place.
KEYS[1]  job:<id>
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  job id      ARGV[4]  new priority (-1000..1000)
Returns {'ok', old_priority, position or -1} | {'missing'} | {'state', state}
]]
--@include common
local id, priority = ARGV[3], tonumber(ARGV[4])
local f = redis.call('HMGET', KEYS[1], 'state', 'service', 'priority', 'seq')
if not f[1] then return {'missing'} end
if f[1] ~= 'queued' then return {'state', f[1]} end
local svc = f[2]
redis.call('HSET', KEYS[1], 'priority', priority)
redis.call('ZADD', k_queue(svc), 'XX', queue_score(priority, f[4]), id)
emit('bumped', id, svc, {'from', f[3], 'to', tostring(priority)})
return {'ok', f[3], position_of(id, svc)}
