-- A session of a holder beats (or opens): alive until now + ttl.
-- KEYS[1] sessions (zset "holder session" -> expiry ms), KEYS[2] holders
-- (zset holder -> latest expiry), KEYS[3] counts (hash holder -> live
-- sessions), KEYS[4] seen (zset holder -> last beat ms)
-- ARGV[1] holder, ARGV[2] session, ARGV[3] ttl ms
-- Returns 1 when the holder had no live session before (it came online).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[3])
local came = 0
if redis.call('ZADD', KEYS[1], expiry, ARGV[1] .. ' ' .. ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[3], ARGV[1], 1) == 1 then
    came = 1
  end
end
redis.call('ZADD', KEYS[2], 'GT', expiry, ARGV[1])
redis.call('ZADD', KEYS[4], now, ARGV[1])
return came
