-- Appends a message to a channel's history and publishes it, in one step,
-- so the published id is the stored one. What is published is
-- `<id> <message frame>`: the frame every subscriber of the channel is
-- sent, built once here.
-- KEYS[1]: the channel's history stream
-- ARGV[1]: the pub/sub channel; ARGV[2]: the message body, a JSON object
-- {"event":..,"data":..}; ARGV[3]: MAXLEN (approximate); ARGV[4]: MINID
-- (ms; older entries go); ARGV[5]: the stream's lifetime after this
-- publish (ms); ARGV[6]: the channel's name as clients see it, as a JSON
-- string
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[2])
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local frame = '{"type":"message","channel":' .. ARGV[6] .. ',"id":"' .. id .. '",' .. string.sub(ARGV[2], 2)
redis.call('PUBLISH', ARGV[1], id .. ' ' .. frame)
return id
