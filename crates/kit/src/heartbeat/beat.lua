-- KEYS[1] registry (sorted set: member -> expiry, ms of Redis server time)
-- KEYS[2] the member's details hash
-- ARGV[1] member, ARGV[2] ttl in ms, ARGV[3..] field, value pairs
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('DEL', KEYS[2])
if #ARGV > 2 then
  redis.call('HSET', KEYS[2], unpack(ARGV, 3))
else
  redis.call('HSET', KEYS[2], 'member', ARGV[1])
end
redis.call('PEXPIRE', KEYS[2], ttl)
-- The registry lives as long as its longest-lived member.
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(last[2]) - now))
return 1
