-- A session ends cleanly.
-- KEYS as in presence_beat.lua; ARGV[1] holder, ARGV[2] session
-- Returns 1 when it was the holder's last live session (it went offline).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = 0
if redis.call('ZREM', KEYS[1], ARGV[1] .. ' ' .. ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[3], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[3], ARGV[1])
    redis.call('ZREM', KEYS[2], ARGV[1])
    gone = 1
  end
  redis.call('ZADD', KEYS[4], now, ARGV[1])
end
return gone
