-- Fair share between tenants (docs/SCHEDULING.md): start-time weighted fair queueing inside
-- each priority band, and per-tenant queued/running counts. Inlined into common.lua.
--
-- A queued job's score is band * BAND + tag. With fair share on, the tag is a virtual start
-- time: at submit, for tenant t of weight w in band b, start = max(V[b], F[b,t]) and
-- F[b,t] = start + round(1000 / w); V[b] advances (never back) to the start tag of each job
-- claimed in band b. A tenant that floods only pushes its own F ahead; another tenant's next
-- job starts at V, ahead of the flood. Everything is a few fields of one hash per service
-- (fair:<svc>): O(1) here, O(log n) for the ZADD, and no scan of tenants or jobs.
--
-- Fields of fair:<svc>, b being the priority: V:<b> virtual time; E:<b> epoch; N:<b> live jobs
-- (queued, delayed or running) holding a tag of band b; F:<b>:<tenant> '<epoch>:<finish tag>'.
-- Job fields: tenant, vtag (the order key within its band: the tag, or the submit sequence
-- with fair share off), vepoch (the epoch of its tag), vband (the band whose N counts the job;
-- set only while it counts), fair ('1' when submitted with fair share on).
--
-- Precision and bounds. Tags are integers (the quantum is rounded, at least 1) below
-- BAND = 2^41, so a score (at most 2001 * 2^41 < 2^53) is an exact double and ties between
-- tenants are exact. Tags only grow within a busy period of the band: when no live job holds
-- a tag of band b (N[b] = 0), the next submit starts a new epoch with V[b] = 1 and ignores the
-- F entries of older epochs (no per-tenant reset needed). Within one busy period V grows by at
-- most the quantum per claimed job, so a band holds 2^41 / 1000 = 2.2e9 jobs of default
-- weight (2.2e8 at the smallest weight, 0.1) before it ever drains; past that, tags saturate at
-- BAND - 1, so a job can never spill into another priority band (order within the band then
-- falls back to job id, the only loss).
local K_TENANTS = P .. 'tenants'
local function k_fair(svc) return P .. 'fair:' .. svc end
local function k_tcount(svc) return P .. 'tcount:' .. svc end
local FAIR_QUANTUM = 1000
local TAG_MAX = BAND - 1

local function int_text(x) return string.format('%.0f', x) end

-- Virtual time, epoch and live count of band ``b``; starts a new busy period when no live job
-- holds a tag of the band: virtual time restarts at 1 (0 is left for a job coming back from an
-- older period, see fair_rejoin), and F entries of older epochs no longer count.
local function fair_band(fk, b)
  local f = redis.call('HMGET', fk, 'V:' .. b, 'E:' .. b, 'N:' .. b)
  local v, epoch, live = tonumber(f[1]) or 1, tonumber(f[2]) or 0, tonumber(f[3]) or 0
  if live <= 0 then epoch, v, live = epoch + 1, 1, 0 end
  return v, epoch, live
end

-- Record that a job now holds tag ``tag`` of band ``b`` in epoch ``epoch``.
local function fair_hold(jkey, fk, b, v, epoch, live, tag)
  redis.call('HSET', fk, 'V:' .. b, int_text(v), 'E:' .. b, epoch, 'N:' .. b, live + 1)
  redis.call('HSET', jkey, 'vtag', tag, 'vband', b, 'vepoch', epoch)
end

-- Tag a job of ``tenant`` entering band ``priority``: start = max(V, F[tenant]).
local function fair_tag(jkey, svc, tenant, priority)
  local fk, b = k_fair(svc), tostring(priority)
  local v, epoch, live = fair_band(fk, b)
  local start = v
  local last = redis.call('HGET', fk, 'F:' .. b .. ':' .. tenant)
  if last then
    local e, fin = string.match(last, '^(%d+):(%d+)$')
    if tonumber(e) == epoch and tonumber(fin) > start then start = tonumber(fin) end
  end
  local w = tonumber(redis.call('HGET', K_TENANTS, tenant)) or 1
  local finish = math.min(start + math.max(1, math.floor(FAIR_QUANTUM / w + 0.5)), TAG_MAX)
  start = math.min(start, TAG_MAX)
  redis.call('HSET', fk, 'F:' .. b .. ':' .. tenant, epoch .. ':' .. int_text(finish))
  fair_hold(jkey, fk, b, v, epoch, live, int_text(start))
end

-- The job no longer holds a tag (it ended, or is being tagged in another band). It keeps
-- vtag and vepoch, so a retry in the same busy period finds its old place.
local function fair_release(jkey, svc)
  local b = redis.call('HGET', jkey, 'vband')
  if not b then return end
  redis.call('HINCRBY', k_fair(svc), 'N:' .. b, -1)
  redis.call('HDEL', jkey, 'vband')
end

-- A bump: tag the job again in band ``priority`` (its tenant's turn there) if it was
-- submitted with fair share on and is not in that band already; otherwise it keeps its order.
local function fair_retag(jkey, svc, priority)
  local f = redis.call('HMGET', jkey, 'fair', 'tenant', 'vband')
  if f[1] ~= '1' or not f[2] or f[3] == tostring(priority) then return end
  fair_release(jkey, svc)
  fair_tag(jkey, svc, f[2], priority)
end

-- A retry of an ended job: in the same busy period of its band it takes back its own tag
-- (its old place); after the band went idle its tag means nothing any more, so it goes just
-- ahead of the current virtual time (tag V - 1), as an old job would without fair share.
local function fair_rejoin(jkey, svc)
  local f = redis.call('HMGET', jkey, 'fair', 'priority', 'vtag', 'vepoch', 'vband')
  if f[1] ~= '1' or f[5] then return end
  local fk, b = k_fair(svc), tostring(f[2])
  local v, epoch, live = fair_band(fk, b)
  local tag = f[3]
  if tonumber(f[4]) ~= epoch or not tag then tag = int_text(math.max(v - 1, 0)) end
  fair_hold(jkey, fk, b, v, epoch, live, tag)
end

-- The order key of a job within its band: its tag (the submit sequence for older jobs).
local function job_order(jkey)
  local f = redis.call('HMGET', jkey, 'vtag', 'seq')
  return f[1] or f[2]
end

-- Per-tenant queued/running counts (tcount:<svc>, fields 'queued:<t>', 'running:<t>'): move a
-- job between states; other states are not counted. Fields at zero are removed.
local function tenant_move(jkey, svc, from, to)
  local t = redis.call('HGET', jkey, 'tenant')
  if not t or from == to then return end
  local ck = k_tcount(svc)
  if from == 'queued' or from == 'running' then
    if redis.call('HINCRBY', ck, from .. ':' .. t, -1) <= 0 then
      redis.call('HDEL', ck, from .. ':' .. t)
    end
  end
  if to == 'queued' or to == 'running' then redis.call('HINCRBY', ck, to .. ':' .. t, 1) end
end

-- A claim took the job: virtual time of its band advances to its tag, and it counts running.
local function fair_claimed(jkey, svc)
  local f = redis.call('HMGET', jkey, 'vband', 'vtag')
  if f[1] then
    local fk = k_fair(svc)
    local v = tonumber(redis.call('HGET', fk, 'V:' .. f[1])) or 0
    if tonumber(f[2]) > v then redis.call('HSET', fk, 'V:' .. f[1], f[2]) end
  end
  tenant_move(jkey, svc, 'queued', 'running')
end
