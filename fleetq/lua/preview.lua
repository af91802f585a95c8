--[[ preview: keep the latest live preview of a running job and tell its waiters.
The preview is a small image the backend shows while it samples; one per job, replaced by the
next, expiring after ttl_ms, deleted when the job leaves the running state (lib leave_running),
never part of the job's outputs. It is announced on the job's own stream only (not the fleet
event log), so dashboards following the fleet are not flooded.
KEYS[1]  job:<id>    KEYS[2]  preview:<id>
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  job id      ARGV[4]  lease token     ARGV[5]  ttl_ms
ARGV[6]  max bytes   ARGV[7]  content type    ARGV[8]  image bytes
Returns {'ok', time ms} | {'stale', state or 'missing'} | {'too_large', size}
]]
--@include common
local id = ARGV[3]
local f = redis.call('HMGET', KEYS[1], 'state', 'token')
if f[1] ~= 'running' or f[2] ~= ARGV[4] then return {'stale', f[1] or 'missing'} end
local size = string.len(ARGV[8])
if size > tonumber(ARGV[6]) then return {'too_large', size} end
local now = now_ms()
redis.call('HSET', KEYS[2], 'data', ARGV[8], 'content_type', ARGV[7], 'ms', now)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
job_emit(id, 'preview', {'content_type', ARGV[7], 'size', size, 'ms', now})
return {'ok', now}
