--[[ claim: take the best queued job this GPU can run, across several services, and lease it.
Each service keeps one queue per requirement class (docs/SCHEDULING.md); the claimer names the
classes its GPU meets, and the script reads only the head of each of those queues: the cost
grows with the number of classes served, never with the number of queued jobs.
Best = highest priority, then first in its band (the fair-share order between tenants, or
submit order: a job's score in its class queue is the same score it would have in one service
queue, since the fair tags come from one virtual time per service and band), over every
non-paused service given; with warm-model affinity on, the best head of a class using the
GPU's loaded model wins instead when its priority band is within the window of the best one's,
it arrived less than the bound after the best one, and (fair share on) both are one tenant's.
Due retries (delayed jobs whose backoff elapsed) are promoted into their class queue first.
A drained host or GPU claims nothing.
KEYS[1]  leases     KEYS[2]  paused     KEYS[3]  drained
then for each service i (0-based), KEYS[4+4i .. 7+4i]:
         delayed:<svc>, running:<svc>, waiting:<svc>, classver:<svc>
ARGV[1]  key prefix        ARGV[2]  event stream cap
ARGV[3]  lease token (random, chosen by the claimer)
ARGV[4]  lease_ms          ARGV[5]  host id        ARGV[6]  GPU index
ARGV[7]  promote batch (max delayed jobs promoted per service per call)
ARGV[8]  affinity window in priority bands (-1: affinity off)
ARGV[9]  affinity max wait (ms): the best job is never passed over by one that arrived this
         much later than it
ARGV[10] the wake channel (service, or service:class) whose wake-up led to this claim, or ''
ARGV[11] number of services
ARGV[12..] per service, in the order of the KEYS groups: name, class-set version the claimer
         knows ('' = do not check), count of classes C (-1 = every class of the service), then
         C pairs (class id, '1' if the class uses the GPU's warm model else '0'). The empty
         class (no requirements) is always served.
Returns {'claimed', id, service, token, workflow, priority, attempts, max_attempts, claims,
         timeout_ms, metadata, submitted_ms, class, '1' if taken for affinity else '0'}
         (a claim resent with the same token, its first reply lost, gets the job the first
         one leased: claim:<token> records it while the job runs)
      | {'empty', next_ready_ms or '', now_ms, paused services...}
              nothing claimable; a retry is due at next_ready_ms; the paused services skipped
      | {'classes', services...}  the class set of these services changed: reload and retry
      | {'drained'}
]]
--@include common
local token, lease_ms, host, gpu = ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]

local function claimed(id, svc, claims, warm)
  local f = redis.call('HMGET', k_job(id), 'workflow', 'priority', 'attempts', 'max_attempts',
    'timeout_ms', 'metadata', 'submitted_ms', 'class')
  return {'claimed', id, svc, token, f[1], f[2], f[3], f[4], tostring(claims), f[5], f[6], f[7],
    f[8] or '', warm}
end

local held = redis.call('GET', k_claim(token))
if held then
  local f = redis.call('HMGET', k_job(held), 'state', 'token', 'service', 'claims')
  if f[1] == 'running' and f[2] == token then return claimed(held, f[3], f[4], '0') end
end

-- Read the per-service arguments.
local woken_svc, woken_cls = string.match(ARGV[10], '^([^:]*):?(.*)$')
local n = tonumber(ARGV[11])
local services = {}
local at = 12
for i = 0, n - 1 do
  local svc = {name = ARGV[at], version = ARGV[at + 1], classes = {}, warm = {}}
  local count = tonumber(ARGV[at + 2])
  at = at + 3
  if count < 0 then
    svc.classes = classes_of(svc.name)
  else
    for _ = 1, count do
      svc.classes[#svc.classes + 1] = ARGV[at]
      if ARGV[at + 1] == '1' then svc.warm[ARGV[at]] = true end
      at = at + 2
    end
  end
  services[i + 1] = svc
end

-- A claimer that does not know every class of a service could leave a job it can run unseen.
local stale = {}
for i = 0, n - 1 do
  local known = services[i + 1].version
  if known ~= '' and (redis.call('GET', KEYS[7 + 4 * i]) or '0') ~= known then
    stale[#stale + 1] = services[i + 1].name
  end
end
if #stale > 0 then return {'classes', unpack(stale)} end

local batch = tonumber(ARGV[7])
local drained = redis.call('SMISMEMBER', KEYS[3], host, host .. ':' .. gpu)
if drained[1] == 1 or drained[2] == 1 then return {'drained'} end
local now = now_ms()
local window, max_wait = tonumber(ARGV[8]), tonumber(ARGV[9])
local best, warm_best, next_ready = nil, nil, nil
local names = {}
for i = 1, n do names[i] = services[i].name end
local paused = redis.call('SMISMEMBER', KEYS[2], unpack(names))
local paused_names = {}

local function look(i, svc, cls, warm)
  local head = redis.call('ZRANGE', k_cqueue(svc, cls), 0, 0, 'WITHSCORES')
  if not head[1] then return end
  local cand = {id = head[1], score = tonumber(head[2]), i = i, cls = cls}
  if best == nil or cand.score < best.score then best = cand end
  if warm and (warm_best == nil or cand.score < warm_best.score) then warm_best = cand end
end

for i = 0, n - 1 do
  local svc = services[i + 1]
  local delayed = KEYS[4 + 4 * i]
  if paused[i + 1] == 1 then
    paused_names[#paused_names + 1] = svc.name
  else
    -- Promote retries whose backoff is over (only look further when the first one is due).
    local nxt = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
    if nxt[1] and tonumber(nxt[2]) <= now then
      local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, batch)
      for _, id in ipairs(due) do
        local f = redis.call('HMGET', k_job(id), 'priority', 'class')
        redis.call('ZREM', delayed, id)
        if f[1] then
          redis.call('ZADD', k_cqueue(svc.name, f[2]), queue_score(f[1], job_order(k_job(id))),
            id)
          redis.call('HDEL', k_job(id), 'ready_ms')
          -- Its class may be one only other GPUs can run: wake one of them.
          if f[2] and f[2] ~= '' then wake(svc.name, f[2]) end
        end
      end
      nxt = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
    end
    if nxt[1] and (next_ready == nil or tonumber(nxt[2]) < next_ready) then
      next_ready = tonumber(nxt[2])
    end
    look(i, svc.name, '', false)
    for _, cls in ipairs(svc.classes) do look(i, svc.name, cls, svc.warm[cls]) end
  end
end
if best == nil then
  local ready = ''
  if next_ready then ready = string.format('%.0f', next_ready) end
  return {'empty', ready, now, unpack(paused_names)}
end

-- Warm-model affinity: bounded in priority (window), in the jobs that may pass over the best
-- one (those that arrived less than max_wait after it), and, with fair share, within one
-- tenant: fair share picks whose turn it is, affinity which of that tenant's jobs fills it.
-- Returns whether ``warm`` may be taken instead of ``best``, and then, when the two should
-- trade order keys (one service and band, both tagged in one busy period), their tags.
local function may_pass_over(best, warm)
  if window < 0 or warm == nil or warm.id == best.id then return false end
  local band_best, band_warm = math.floor(best.score / BAND), math.floor(warm.score / BAND)
  if band_warm - band_best > window then return false end
  local b = redis.call('HMGET', k_job(best.id), 'tenant', 'fair', 'vepoch', 'vtag')
  local w = redis.call('HMGET', k_job(warm.id), 'tenant', 'fair', 'vepoch', 'vtag')
  local fair = b[2] == '1' and w[2] == '1'
  if fair and b[1] ~= w[1] then return false end
  local b_since = redis.call('ZSCORE', KEYS[6 + 4 * best.i], best.id)
  local w_since = redis.call('ZSCORE', KEYS[6 + 4 * warm.i], warm.id)
  if b_since and w_since and tonumber(w_since) - tonumber(b_since) >= max_wait then
    return false
  end
  if fair and band_warm == band_best and best.i == warm.i and b[3] == w[3] and b[4] and w[4]
  then
    return true, {b[4], w[4]}
  end
  return true, nil
end

local pick, for_affinity = best, '0'
local pass, tags = may_pass_over(best, warm_best)
if pass then
  pick, for_affinity = warm_best, '1'
  if tags then
    -- The tenant spends the turn of its first job on the warm one: the two trade order keys,
    -- so the passed-over job queues on from the warm one's place and the band's virtual time
    -- advances as if the first job had run (another tenant's next job is then tagged at the
    -- front, not behind the jobs affinity keeps passing over).
    local best_tag, warm_tag = tags[1], tags[2]
    redis.call('HSET', k_job(best.id), 'vtag', warm_tag)
    redis.call('HSET', k_job(warm_best.id), 'vtag', best_tag)
    redis.call('ZADD', k_cqueue(services[best.i + 1].name, best.cls), 'XX',
      string.format('%.0f', math.floor(best.score / BAND) * BAND + tonumber(warm_tag)), best.id)
  end
end

local svc = services[pick.i + 1].name
local id = pick.id
local jkey = k_job(id)
redis.call('ZREM', k_cqueue(svc, pick.cls), id)
redis.call('ZREM', KEYS[6 + 4 * pick.i], id)
redis.call('ZADD', KEYS[5 + 4 * pick.i], now, id)
redis.call('ZADD', KEYS[1], now + lease_ms, id)
local claims = redis.call('HINCRBY', jkey, 'claims', 1)
redis.call('HSET', jkey, 'state', 'running', 'token', token, 'host', host, 'gpu', gpu,
  'started_ms', now, 'lease_until_ms', now + lease_ms, 'progress', '0', 'progress_text', '')
redis.call('HDEL', jkey, 'cancel_requested')
fair_claimed(jkey, svc)
redis.call('SET', k_claim(token), id, 'PX', lease_ms)
local raw = redis.call('HGET', jkey, 'timeline')
local timeline = {}
if raw and raw ~= '[]' then timeline = cjson.decode(raw) end
timeline[#timeline + 1] = {claim = claims, host = host, gpu = tonumber(gpu), started_ms = now}
redis.call('HSET', jkey, 'timeline', cjson.encode(timeline))
-- Wake-ups: a marker is one member, so the pop that woke this claimer may have stood for more
-- jobs than the one it takes. Mark again the class whose wake-up it used, and the class it
-- claimed from, when jobs remain there: another idle claimer of that class then wakes. (The
-- markers of other classes were not touched: they stay as they were.) A class queue this
-- claim emptied loses its marker, so nobody wakes for nothing; the plain marker stays, as it
-- also stands for retries falling due.
local function remark(s, c)
  if redis.call('ZCARD', k_cqueue(s, c)) > 0 then wake(s, c)
  elseif c ~= '' then redis.call('DEL', k_cmarker(s, c)) end
end
remark(svc, pick.cls)
if woken_svc ~= '' and (woken_svc ~= svc or woken_cls ~= pick.cls) then
  remark(woken_svc, woken_cls)
end
emit('claimed', id, svc, {'host', host, 'gpu', gpu, 'claim', tostring(claims)})
job_emit(id, 'claimed', {'host', host, 'gpu', gpu})
return claimed(id, svc, claims, for_affinity)
