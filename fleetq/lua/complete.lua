--[[ complete: finish a running job successfully and store its output files.
KEYS[1]  job:<id>    KEYS[2]  leases    KEYS[3]  out:<id>
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  job id      ARGV[4]  lease token
ARGV[5]  retention_ms (finished job)    ARGV[6]  output_ttl_ms    ARGV[7]  max_output_bytes
ARGV[8]  output manifest (JSON list of {filename, content_type, size, sha256, location})
ARGV[9..] output file bytes, in manifest order, for outputs kept in Redis (location 'redis');
          none when the outputs are in a file or S3 store (Redis then keeps only the manifest)
Returns {'ok'} | {'stale', state or 'missing'} | {'too_large', total_bytes}
(A resend of a completion that succeeded answers {'ok'} again.)
The run (claim to now) goes into the run times of the job's class (lib/runtimes.lua).
]]
--@include common
--@include runtimes
local id = ARGV[3]
local f = redis.call('HMGET', KEYS[1], 'state', 'token', 'service')
if f[1] ~= 'running' or f[2] ~= ARGV[4] then
  if replayed(KEYS[1], ARGV[4]) == 'completed' then return {'ok'} end
  return {'stale', f[1] or 'missing'}
end
local total = 0
for i = 9, #ARGV do total = total + string.len(ARGV[i]) end
if total > tonumber(ARGV[7]) then return {'too_large', total} end
local now = now_ms()
redis.call('DEL', KEYS[3])
for i = 9, #ARGV do redis.call('HSET', KEYS[3], tostring(i - 9), ARGV[i]) end
record_run_time(KEYS[1], f[3], now)
finish(id, KEYS[1], f[3], 'completed', now, tonumber(ARGV[5]))
if #ARGV >= 9 then redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[6])) end
redis.call('HSET', KEYS[1], 'progress', '1', 'outputs', ARGV[8])
redis.call('HDEL', KEYS[1], 'error')
close_attempt(KEYS[1], now, 'completed', '')
remember_finish(KEYS[1], ARGV[4], 'completed')
emit('completed', id, f[3], {'outputs', tostring(#ARGV - 8)})
job_emit(id, 'completed', {})
return {'ok'}
