-- KEYS[1] job hash, KEYS[2] active, KEYS[3] ready, KEYS[4] ready_at,
-- KEYS[5] signal; ARGV[1] id, ARGV[2] attempt holding the lease
-- Gives a leased job back without counting the attempt (a worker shutting
-- down before it could finish): 1, or 0 when the lease is no longer held.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[1], 'attempts', 'state', 'priority', 'seq')
if f[1] ~= ARGV[2] or f[2] ~= 'running' then return 0 end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('HSET', KEYS[1], 'state', 'queued')
redis.call('HDEL', KEYS[1], 'lease_until', 'started_at')
redis.call('ZADD', KEYS[3], (1000 - tonumber(f[3])) * 1000000000000 + tonumber(f[4]), ARGV[1])
redis.call('ZADD', KEYS[4], now, ARGV[1])
redis.call('LPUSH', KEYS[5], '1')
redis.call('LTRIM', KEYS[5], 0, 63)
return 1
