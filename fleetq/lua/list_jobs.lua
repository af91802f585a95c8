--[[ list_jobs (read only): one bounded page of jobs in one state, across services.
queued   : by score (priority, then the order in the band: fair-share tag or submit order;
           submit order between services), delayed retries after the queue, by ready time
running  : by priority, then claim time
completed, failed, cancelled : newest first
Cost is O(services * classes * limit * log n): it never scans a whole queue (each requirement
class queue gives at most its first page). Running jobs are read
whole (at most one per GPU), since a page of them by priority needs them all: the earliest
claimed are not the most urgent.
KEYS[1]  services
ARGV[1]  key prefix  ARGV[2]  event stream cap (unused)
ARGV[3]  state       ARGV[4]  limit     ARGV[5]  number of field names F
ARGV[6 .. 5+F] field names to read      ARGV[6+F ..] services (none: every known service)
Returns {{position or -1, field values...}, ...}
]]
--@include common
local state, limit, nf = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local fields = {}
for i = 6, 5 + nf do fields[#fields + 1] = ARGV[i] end
local services = {}
for i = 6 + nf, #ARGV do services[#services + 1] = ARGV[i] end
if #services == 0 then services = redis.call('SMEMBERS', KEYS[1]) end
local rows = {}
local function collect(key, svc, sort_key_fn, reverse, last)
  local items
  if reverse then
    items = redis.call('ZREVRANGE', key, 0, limit - 1, 'WITHSCORES')
  else
    items = redis.call('ZRANGE', key, 0, last or limit - 1, 'WITHSCORES')
  end
  for i = 1, #items, 2 do
    rows[#rows + 1] = {id = items[i], svc = svc, sort = sort_key_fn(items[i], tonumber(items[i + 1]))}
  end
end
local BIG = 5000 * BAND
if state == 'queued' then
  for _, svc in ipairs(services) do
    collect(k_queue(svc), svc, function(_, score) return score end, false)
    for _, cls in ipairs(classes_of(svc)) do
      collect(k_cqueue(svc, cls), svc, function(_, score) return score end, false)
    end
    collect(k_delayed(svc), svc, function(_, score) return BIG + score end, false)
  end
  -- Equal scores happen across services (each has its own fair-share virtual time): submit
  -- order breaks the tie, so a page is stable.
  for _, row in ipairs(rows) do
    row.seq = tonumber(redis.call('HGET', k_job(row.id), 'seq')) or 0
  end
  table.sort(rows, function(a, b)
    if a.sort ~= b.sort then return a.sort < b.sort end
    return a.seq < b.seq
  end)
elseif state == 'running' then
  for _, svc in ipairs(services) do
    collect(k_running(svc), svc, function(id, score)
      local prio = tonumber(redis.call('HGET', k_job(id), 'priority') or '0')
      return (1000 - prio) * BAND + score
    end, false, -1)
  end
  table.sort(rows, function(a, b) return a.sort < b.sort end)
else
  for _, svc in ipairs(services) do
    collect(k_ended(svc, state), svc, function(_, score) return score end, true)
  end
  table.sort(rows, function(a, b) return a.sort > b.sort end)
end
-- A queued row's position is the number of queued rows of its service before it: every job
-- ahead of it is on this page, since each class queue gave its first page.
local out = {}
local ahead = {}
for i = 1, math.min(limit, #rows) do
  local row = rows[i]
  local values = redis.call('HMGET', k_job(row.id), unpack(fields))
  local pos = -1
  if state == 'queued' and row.sort < BIG then
    pos = ahead[row.svc] or 0
    ahead[row.svc] = pos + 1
  end
  local entry = {pos}
  for j = 1, #fields do entry[#entry + 1] = values[j] end
  out[#out + 1] = entry
end
return out
