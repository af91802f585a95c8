-- Run times per requirement class, for the ETA of queued jobs (fleetq/eta.py). The hash
-- runtimes:<svc> holds per class ms:<class> (mean claim-to-finish time of its completed runs,
-- ms) and n:<class> (runs on record), and the same for the whole service under the class '*'
-- (class ids are hex, so '*' is never one). The mean is the plain mean of the first 32 runs,
-- then exponentially weighted (weight 1/32 for the newest): O(1) per finish, one field pair
-- per class. Include after common (it uses P).
local RUNTIME_ALPHA = 1 / 32
local function k_runtimes(svc) return P .. 'runtimes:' .. svc end

local function update_run_time(key, cls, run_ms)
  local old = redis.call('HMGET', key, 'ms:' .. cls, 'n:' .. cls)
  local runs = tonumber(old[2] or '0') + 1
  local mean = run_ms
  if old[1] then
    local weight = math.max(RUNTIME_ALPHA, 1 / runs)
    mean = tonumber(old[1]) + weight * (run_ms - tonumber(old[1]))
  end
  redis.call('HSET', key, 'ms:' .. cls, string.format('%.1f', mean), 'n:' .. cls, runs)
end

-- Record the run that just finished (its claim to ``now``) for the job's class and service.
local function record_run_time(jkey, svc, now)
  local f = redis.call('HMGET', jkey, 'started_ms', 'class')
  if not f[1] then return end
  local run_ms = math.max(0, now - tonumber(f[1]))
  local key = k_runtimes(svc)
  update_run_time(key, f[2] or '', run_ms)
  update_run_time(key, '*', run_ms)
end
