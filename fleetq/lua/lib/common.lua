-- Shared helpers, inlined into each script by fleetq/scripts.py at the "--@include common" line.
-- Every script passes the key prefix as ARGV[1] and the event stream cap as ARGV[2].
local P = ARGV[1]
local EVENTS_MAXLEN = ARGV[2]

-- Key builders: the same suffixes as fleetq/keys.py (a test checks they agree).
local function k_job(id) return P .. 'job:' .. id end
local function k_jobev(id) return P .. 'jobev:' .. id end
local function k_out(id) return P .. 'out:' .. id end
local function k_in(id) return P .. 'in:' .. id end
local function k_preview(id) return P .. 'preview:' .. id end
local function k_queue(svc) return P .. 'q:' .. svc end
local function k_delayed(svc) return P .. 'delayed:' .. svc end
local function k_waiting(svc) return P .. 'waiting:' .. svc end
local function k_running(svc) return P .. 'running:' .. svc end
local function k_ended(svc, state) return P .. 'ended:' .. svc .. ':' .. state end
local function k_marker(svc) return P .. 'marker:' .. svc end
local function k_idem(key) return P .. 'idem:' .. key end
local function k_claim(token) return P .. 'claim:' .. token end
local function k_signal(host) return P .. 'signal:' .. host end
-- Requirement classes (docs/SCHEDULING.md): the empty class keeps the plain service names.
local function k_cqueue(svc, cls)
  if cls == nil or cls == '' then return P .. 'q:' .. svc end
  return P .. 'q:' .. svc .. ':' .. cls
end
local function k_cmarker(svc, cls)
  if cls == nil or cls == '' then return P .. 'marker:' .. svc end
  return P .. 'marker:' .. svc .. ':' .. cls
end
local function k_classes(svc) return P .. 'classes:' .. svc end
local function k_classver(svc) return P .. 'classver:' .. svc end
local K_LEASES = P .. 'leases'
local K_EVENTS = P .. 'events'
local K_PAUSED = P .. 'paused'

-- Redis server time in milliseconds: one clock for the whole fleet.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Queue score: priority band first (higher priority, lower score), then the order key within
-- the band (a fair-share tag, or the submit sequence; see fair.lua).
-- Priorities span -1000..1000 (2001 bands); keys below 2^41 keep the score exact in a double.
local BAND = 2199023255552
local function queue_score(priority, order)
  return string.format('%.0f', (1000 - tonumber(priority)) * BAND + tonumber(order))
end

--@include fair

local function append(dst, src)
  if src then for i = 1, #src do dst[#dst + 1] = src[i] end end
  return dst
end

-- Append to the fleet event stream.
local function emit(kind, id, service, extra)
  local args = {K_EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'type', kind, 'job', id,
                'service', service}
  return redis.call('XADD', unpack(append(args, extra)))
end

-- Append to one job's own stream, which waiters and the owning puller block on.
-- XADD may create the stream after finish() set the retention of the job (PEXPIRE on a key
-- that does not exist yet is a no-op), so the stream takes the job's remaining time to live:
-- a stream never outlives its job.
local function job_emit(id, kind, extra)
  local args = {k_jobev(id), 'MAXLEN', '~', '200', '*', 'type', kind}
  local entry = redis.call('XADD', unpack(append(args, extra)))
  local ttl = redis.call('PTTL', k_job(id))
  if ttl > 0 then redis.call('PEXPIRE', k_jobev(id), ttl) end
  return entry
end

-- Signal the supervisor of ``host`` (its waiter pops the signal with its work markers):
-- 'streams' makes it read the streams it follows (operator commands, its running jobs' own
-- streams), 'gate' makes its idle claimers check drains again. One member per kind, so a
-- signal nobody pops (a host that is down) stays one small key.
local function signal(host, kind)
  redis.call('ZADD', k_signal(host), 0, kind)
end

-- Wake one blocked claimer of a service's requirement class (the plain service marker for the
-- empty class), unless the service is paused.
local function wake(svc, cls)
  if redis.call('SISMEMBER', K_PAUSED, svc) == 0 then
    redis.call('ZADD', k_cmarker(svc, cls), 0, '0')
  end
end

-- The requirement class of a job ('' for none) and the queue it waits in.
local function class_of(id)
  return redis.call('HGET', k_job(id), 'class') or ''
end

-- The non-empty requirement classes ever submitted to a service (never removed).
local function classes_of(svc)
  return redis.call('HKEYS', k_classes(svc))
end

-- Queue position (0 = next): the jobs of the service, of every requirement class, that are
-- ahead of it; -1 when the job is not queued. O(classes * log n).
local function position_of(id, svc)
  local cls = class_of(id)
  local q = k_cqueue(svc, cls)
  local score = redis.call('ZSCORE', q, id)
  if not score then return -1 end
  local pos = redis.call('ZRANK', q, id)
  local below = '(' .. score
  if cls ~= '' then pos = pos + redis.call('ZCOUNT', k_queue(svc), '-inf', below) end
  for _, other in ipairs(classes_of(svc)) do
    if other ~= cls then
      pos = pos + redis.call('ZCOUNT', k_cqueue(svc, other), '-inf', below)
    end
  end
  return pos
end

-- Close the newest attempt of the job's timeline.
local function close_attempt(jkey, now, outcome, detail)
  local raw = redis.call('HGET', jkey, 'timeline')
  if not raw then return end
  local timeline = cjson.decode(raw)
  local last = timeline[#timeline]
  if last and not last['ended_ms'] then
    last['ended_ms'] = now
    last['outcome'] = outcome
    if detail and detail ~= '' then last['detail'] = detail end
    redis.call('HSET', jkey, 'timeline', cjson.encode(timeline))
  end
end

-- Leave the running state: drop the lease, the running index entry, the claim record and the
-- live preview (a preview belongs to one run; it is never part of a result).
local function leave_running(id, svc)
  redis.call('ZREM', K_LEASES, id)
  redis.call('DEL', k_preview(id))
  redis.call('ZREM', k_running(svc), id)
  local token = redis.call('HGET', k_job(id), 'token')
  if token then redis.call('DEL', k_claim(token)) end
end

-- Put a job back at its place in its class queue (priority band, its kept order key).
local function enqueue(id, jkey, svc, now)
  local f = redis.call('HMGET', jkey, 'priority', 'enqueued_ms', 'state', 'class')
  tenant_move(jkey, svc, f[3], 'queued')
  redis.call('ZADD', k_cqueue(svc, f[4]), queue_score(f[1], job_order(jkey)), id)
  redis.call('ZADD', k_waiting(svc), f[2] or now, id)
  redis.call('HSET', jkey, 'state', 'queued', 'progress', '0', 'progress_text', '')
  redis.call('HDEL', jkey, 'token', 'lease_until_ms', 'cancel_requested', 'ready_ms', 'host',
    'gpu')
  wake(svc, f[4])
end

-- Move a job into a terminal state and start its retention clock.
-- Only a running job has a lease, a running entry and outputs, so a queued job (a client's
-- cancel) touches no key of the worker side: an ACL role without write access to the leases,
-- running:* and out:* keys can still cancel its queued jobs (docs/OPERATIONS.md).
local function finish(id, jkey, svc, state, now, retention_ms)
  local f = redis.call('HMGET', jkey, 'state', 'class')
  local old = f[1]
  local was_running = old == 'running'
  tenant_move(jkey, svc, old, state)
  fair_release(jkey, svc)
  redis.call('ZREM', k_cqueue(svc, f[2]), id)
  redis.call('ZREM', k_delayed(svc), id)
  redis.call('ZREM', k_waiting(svc), id)
  if was_running then leave_running(id, svc) end
  redis.call('ZADD', k_ended(svc, state), now, id)
  redis.call('HSET', jkey, 'state', state, 'finished_ms', now)
  redis.call('HDEL', jkey, 'token', 'lease_until_ms', 'ready_ms')
  redis.call('PEXPIRE', jkey, retention_ms)
  redis.call('PEXPIRE', k_jobev(id), retention_ms)
  redis.call('PEXPIRE', k_in(id), retention_ms)
  if was_running then redis.call('PEXPIRE', k_out(id), retention_ms) end
  local idem = redis.call('HGET', jkey, 'idem')
  if idem and idem ~= '' then redis.call('PEXPIRE', k_idem(idem), retention_ms) end
end

-- A finishing write whose reply was lost (the connection dropped) is sent again with the same
-- lease token. The first write recorded its token and outcome, so the resend is answered as the
-- first one was, instead of as stale.
local function remember_finish(jkey, token, outcome)
  redis.call('HSET', jkey, 'last_token', token, 'last_outcome', outcome)
end

local function replayed(jkey, token)
  local f = redis.call('HMGET', jkey, 'last_token', 'last_outcome')
  if f[1] and f[1] == token then return f[2] end
  return nil
end
