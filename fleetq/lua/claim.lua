--[[ claim: take the best queued job across several services and lease it to one GPU.
Best = highest priority, then first in its band (the fair-share order between tenants, or
submit order), over every non-paused service given. Due retries (delayed jobs whose backoff
elapsed) are promoted into their queue first. A drained host or GPU
claims nothing.
KEYS[1]  leases     KEYS[2]  paused     KEYS[3]  drained
then for each service i (0-based), KEYS[4+5i .. 8+5i]:
         q:<svc>, delayed:<svc>, running:<svc>, waiting:<svc>, marker:<svc>
ARGV[1]  key prefix        ARGV[2]  event stream cap
ARGV[3]  lease token (random, chosen by the claimer)
ARGV[4]  lease_ms          ARGV[5]  host id        ARGV[6]  GPU index
ARGV[7]  promote batch (max delayed jobs promoted per service per call)
ARGV[8..] service names, in the order of the KEYS groups
Returns {'claimed', id, service, token, workflow, priority, attempts, max_attempts, claims,
         timeout_ms, metadata, submitted_ms}
         (a claim resent with the same token, its first reply lost, gets the job the first
         one leased: claim:<token> records it while the job runs)
      | {'empty', next_ready_ms or '', now_ms, paused services...}
              nothing claimable; a retry is due at next_ready_ms; the paused services skipped
      | {'drained'}
]]
--@include common
local token, lease_ms, host, gpu = ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]

local function claimed(id, svc, claims)
  local f = redis.call('HMGET', k_job(id), 'workflow', 'priority', 'attempts', 'max_attempts',
    'timeout_ms', 'metadata', 'submitted_ms')
  return {'claimed', id, svc, token, f[1], f[2], f[3], f[4], tostring(claims), f[5], f[6], f[7]}
end

local held = redis.call('GET', k_claim(token))
if held then
  local f = redis.call('HMGET', k_job(held), 'state', 'token', 'service', 'claims')
  if f[1] == 'running' and f[2] == token then return claimed(held, f[3], f[4]) end
end
local batch = tonumber(ARGV[7])
local drained = redis.call('SMISMEMBER', KEYS[3], host, host .. ':' .. gpu)
if drained[1] == 1 or drained[2] == 1 then return {'drained'} end
local now = now_ms()
local best_score, best_id, best_i, next_ready = nil, nil, nil, nil
local n = #ARGV - 7
local names = {}
for i = 0, n - 1 do names[i + 1] = ARGV[8 + i] end
local paused = redis.call('SMISMEMBER', KEYS[2], unpack(names))
local paused_names = {}
for i = 0, n - 1 do
  local q, delayed = KEYS[4 + 5 * i], KEYS[5 + 5 * i]
  if paused[i + 1] == 1 then
    paused_names[#paused_names + 1] = ARGV[8 + i]
  else
    -- Promote retries whose backoff is over (only look further when the first one is due).
    local nxt = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
    if nxt[1] and tonumber(nxt[2]) <= now then
      local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, batch)
      for _, id in ipairs(due) do
        local f = redis.call('HMGET', k_job(id), 'priority')
        redis.call('ZREM', delayed, id)
        if f[1] then
          redis.call('ZADD', q, queue_score(f[1], job_order(k_job(id))), id)
          redis.call('HDEL', k_job(id), 'ready_ms')
        end
      end
      nxt = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
    end
    if nxt[1] and (next_ready == nil or tonumber(nxt[2]) < next_ready) then
      next_ready = tonumber(nxt[2])
    end
    local head = redis.call('ZRANGE', q, 0, 0, 'WITHSCORES')
    if head[1] and (best_score == nil or tonumber(head[2]) < best_score) then
      best_score, best_id, best_i = tonumber(head[2]), head[1], i
    end
  end
end
if best_id == nil then
  local ready = ''
  if next_ready then ready = string.format('%.0f', next_ready) end
  return {'empty', ready, now, unpack(paused_names)}
end
local svc = ARGV[8 + best_i]
local jkey = k_job(best_id)
redis.call('ZREM', KEYS[4 + 5 * best_i], best_id)
redis.call('ZREM', KEYS[7 + 5 * best_i], best_id)
redis.call('ZADD', KEYS[6 + 5 * best_i], now, best_id)
redis.call('ZADD', KEYS[1], now + lease_ms, best_id)
local claims = redis.call('HINCRBY', jkey, 'claims', 1)
redis.call('HSET', jkey, 'state', 'running', 'token', token, 'host', host, 'gpu', gpu,
  'started_ms', now, 'lease_until_ms', now + lease_ms, 'progress', '0', 'progress_text', '')
redis.call('HDEL', jkey, 'cancel_requested')
fair_claimed(jkey, svc)
redis.call('SET', k_claim(token), best_id, 'PX', lease_ms)
local raw = redis.call('HGET', jkey, 'timeline')
local timeline = {}
if raw and raw ~= '[]' then timeline = cjson.decode(raw) end
timeline[#timeline + 1] = {claim = claims, host = host, gpu = tonumber(gpu), started_ms = now}
redis.call('HSET', jkey, 'timeline', cjson.encode(timeline))
-- Keep every non-empty queue we looked at marked, so other idle claimers wake for it.
for i = 0, n - 1 do
  if redis.call('ZCARD', KEYS[4 + 5 * i]) > 0 then wake(ARGV[8 + i]) end
end
emit('claimed', best_id, svc, {'host', host, 'gpu', gpu, 'claim', tostring(claims)})
job_emit(best_id, 'claimed', {'host', host, 'gpu', gpu})
return claimed(best_id, svc, claims)
