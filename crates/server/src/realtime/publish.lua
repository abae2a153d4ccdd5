-- Appends a message to a channel's history and publishes it, in one step,
-- so the published id is the stored one.
-- KEYS[1]: the channel's history stream
-- ARGV[1]: the pub/sub channel; ARGV[2]: the message body (JSON object);
-- ARGV[3]: MAXLEN (approximate); ARGV[4]: MINID (ms; older entries go);
-- ARGV[5]: the stream's lifetime after this publish (ms)
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[2])
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', ARGV[1], id .. ' ' .. ARGV[2])
return id
