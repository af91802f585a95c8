--[[ submit: enqueue a new job; with a known idempotency key, return the existing job instead.
KEYS[1]  q:<service>[:<class>] the queue of the job's requirement class
KEYS[2]  waiting:<service>    enqueue times (oldest wait)
KEYS[3]  job:<id>             the new job's hash
KEYS[4]  seq                  submit counter (FIFO tie-break)
KEYS[5]  services             set of known services
KEYS[6]  in:<id>              the new job's input files (name -> bytes)
KEYS[7]  classes:<service>    class id -> canonical requirements
KEYS[8]  classver:<service>   version of the class set (claimers reload it when it moves)
KEYS[9]  idem:<key>           only when an idempotency key is given
ARGV[1]  key prefix           ARGV[2]  event stream cap
ARGV[3]  job id               ARGV[4]  service
ARGV[5]  workflow (JSON)      ARGV[6]  priority (-1000..1000)
ARGV[7]  max_attempts         ARGV[8]  timeout_ms
ARGV[9]  metadata (JSON)      ARGV[10] idempotency key, or ''
ARGV[11] tenant               ARGV[12] '1': fair share between tenants, '0': submit order
ARGV[13] requirement class id, or '' (no requirements)
ARGV[14] the class's canonical requirements (JSON), or ''
ARGV[15] cap on the input files together (bytes)
ARGV[16] input manifest (JSON list of {name, content_type, size}), or '' without inputs
ARGV[17..] the input files' bytes, in manifest order
Returns {'created', id, position} | {'existing', id, position or -1} | {'collision'}
      | {'too_large', bytes} (the inputs are over the cap; nothing was written)
('existing' also answers a resend of the same submit whose first reply was lost.)
]]
--@include common
local id, svc, idem = ARGV[3], ARGV[4], ARGV[10]
if idem ~= '' then
  local existing = redis.call('GET', KEYS[9])
  if existing and redis.call('EXISTS', k_job(existing)) == 1 then
    -- The position in the existing job's own queue (the resubmit may name another service).
    local f = redis.call('HMGET', k_job(existing), 'state', 'service')
    local pos = -1
    if f[1] == 'queued' then pos = position_of(existing, f[2]) end
    return {'existing', existing, pos}
  end
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  -- The same id with the same content is this very submit sent again (the client resent it
  -- after its connection dropped before the reply): answer as the first time did.
  local f = redis.call('HMGET', KEYS[3], 'service', 'workflow', 'metadata', 'state')
  if f[1] == svc and f[2] == ARGV[5] and f[3] == ARGV[9] then
    local pos = -1
    if f[4] == 'queued' then pos = position_of(id, svc) end
    return {'existing', id, pos}
  end
  return {'collision'}
end
-- The cap is checked here too, before any write, so no client can store more than it allows.
local input_cap, input_manifest, FIRST_INPUT = ARGV[15], ARGV[16], 17
local input_bytes = 0
for i = FIRST_INPUT, #ARGV do input_bytes = input_bytes + #ARGV[i] end
if input_bytes > tonumber(input_cap) then return {'too_large', input_bytes} end
local now = now_ms()
local seq = redis.call('INCR', KEYS[4])
local priority = tonumber(ARGV[6])
local tenant, fair = ARGV[11], ARGV[12]
local cls = ARGV[13] or ''
if cls ~= '' and redis.call('HSETNX', KEYS[7], cls, ARGV[14]) == 1 then
  -- A new class: claimers learn of it from the version (they poll it, and a claim with an
  -- older one is told to reload); the plain marker wakes one of them to look now.
  redis.call('INCR', KEYS[8])
  wake(svc)
end
redis.call('HSET', KEYS[3],
  'id', id, 'service', svc, 'state', 'queued', 'priority', priority, 'seq', seq,
  'tenant', tenant, 'vtag', seq, 'fair', fair,
  'workflow', ARGV[5], 'metadata', ARGV[9], 'idem', idem,
  'max_attempts', ARGV[7], 'attempts', 0, 'claims', 0, 'lost', 0,
  'timeout_ms', ARGV[8], 'submitted_ms', now, 'enqueued_ms', now,
  'progress', '0', 'progress_text', '', 'timeline', '[]', 'class', cls)
-- The order key within the band: a fair-share tag (lib/fair.lua), or the submit sequence.
-- One virtual time per service and band, so the tags order jobs across its class queues too.
if fair == '1' then fair_tag(KEYS[3], svc, tenant, priority) end
tenant_move(KEYS[3], svc, nil, 'queued')
redis.call('ZADD', KEYS[1], queue_score(priority, job_order(KEYS[3])), id)
redis.call('ZADD', KEYS[2], now, id)
redis.call('SADD', KEYS[5], svc)
if input_manifest ~= '' then
  local manifest = cjson.decode(input_manifest)
  local fields = {}
  for i, entry in ipairs(manifest) do
    fields[#fields + 1] = entry['name']
    fields[#fields + 1] = ARGV[FIRST_INPUT - 1 + i]
  end
  redis.call('HSET', KEYS[6], unpack(fields))
  redis.call('HSET', KEYS[3], 'inputs', input_manifest)
end
if idem ~= '' then redis.call('SET', KEYS[9], id) end
wake(svc, cls)
emit('submitted', id, svc, {'priority', tostring(priority)})
return {'created', id, position_of(id, svc)}
