--[[ stats (read only): per-service counts in O(services * requirement classes); nothing here
grows with queue size.
KEYS[1]  paused      KEYS[2]  drained     KEYS[3]  services
ARGV[1]  key prefix  ARGV[2]  event stream cap (unused)
ARGV[3]  rate window in ms (e.g. 60000)
ARGV[4..] services that must be listed even if never used
Returns {now_ms, {drained targets...}, {service, queued, delayed, running, completed, failed,
         cancelled, completed_in_window, failed_in_window, oldest_enqueued_ms or '', paused,
         {tenant, queued, running, weight or '', ...}}...}
         (tenants with queued or running jobs, by name: O(tenants), from tcount:<svc>)
]]
--@include common
local now = now_ms()
local since = now - tonumber(ARGV[3])
local seen, order = {}, {}
for i = 4, #ARGV do
  if not seen[ARGV[i]] then seen[ARGV[i]] = true; order[#order + 1] = ARGV[i] end
end
local known = redis.call('SMEMBERS', KEYS[3])
table.sort(known)
for _, svc in ipairs(known) do
  if not seen[svc] then seen[svc] = true; order[#order + 1] = svc end
end
-- Per-tenant counts of one service, flat: tenant, queued, running, weight ('' = default).
local function tenant_rows(svc)
  local raw = redis.call('HGETALL', k_tcount(svc))
  local counts, names = {}, {}
  for i = 1, #raw, 2 do
    local state, t = string.match(raw[i], '^(%a+):(.+)$')
    if state then
      if not counts[t] then counts[t] = {0, 0}; names[#names + 1] = t end
      if state == 'queued' then counts[t][1] = tonumber(raw[i + 1]) end
      if state == 'running' then counts[t][2] = tonumber(raw[i + 1]) end
    end
  end
  table.sort(names)
  local rows = {}
  if #names == 0 then return rows end
  local weights = redis.call('HMGET', K_TENANTS, unpack(names))
  for i, t in ipairs(names) do
    append(rows, {t, counts[t][1], counts[t][2], weights[i] or ''})
  end
  return rows
end
local out = {now, redis.call('SMEMBERS', KEYS[2])}
local function queued(svc)
  local n = redis.call('ZCARD', k_queue(svc))
  for _, cls in ipairs(classes_of(svc)) do n = n + redis.call('ZCARD', k_cqueue(svc, cls)) end
  return n
end
for _, svc in ipairs(order) do
  local oldest = redis.call('ZRANGE', k_waiting(svc), 0, 0, 'WITHSCORES')
  out[#out + 1] = {
    svc,
    queued(svc),
    redis.call('ZCARD', k_delayed(svc)),
    redis.call('ZCARD', k_running(svc)),
    redis.call('ZCARD', k_ended(svc, 'completed')),
    redis.call('ZCARD', k_ended(svc, 'failed')),
    redis.call('ZCARD', k_ended(svc, 'cancelled')),
    redis.call('ZCOUNT', k_ended(svc, 'completed'), since, '+inf'),
    redis.call('ZCOUNT', k_ended(svc, 'failed'), since, '+inf'),
    oldest[2] or '',
    redis.call('SISMEMBER', KEYS[1], svc),
    tenant_rows(svc),
  }
end
return out
