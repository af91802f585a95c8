--[[ send_control: queue an operator command for one supervisor and signal it.
The supervisor blocks on its signal with its work markers; the signal makes it read its command
stream at once. Both writes in one step, so a command is never left without its signal.
KEYS[1]  ctl:<host>  KEYS[2]  signal:<host>
ARGV[1]  key prefix  ARGV[2]  event stream cap
ARGV[3]  the command (JSON)
Returns the command's stream entry id.
]]
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '100', '*', 'command', ARGV[3])
redis.call('ZADD', KEYS[2], 0, 'streams')
return entry
