-- KEYS[1] job hash, KEYS[2] ready, KEYS[3] scheduled, KEYS[4] dead,
-- KEYS[5] ready_at, KEYS[6] signal, KEYS[7] retrying counter; ARGV[1] id
-- Puts a dead or retry-waiting job back in the queue now, with fresh
-- attempts: 1; -1 no such job; 0 in another state.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[1], 'state', 'priority', 'seq')
if not f[1] then return -1 end
if f[1] ~= 'dead' and f[1] ~= 'failed' then return 0 end
if f[1] == 'failed' then redis.call('DECR', KEYS[7]) end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('PERSIST', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', 0, 'scheduled_for', now)
redis.call('ZADD', KEYS[2], (1000 - tonumber(f[2])) * 1000000000000 + tonumber(f[3]), ARGV[1])
redis.call('ZADD', KEYS[5], now, ARGV[1])
redis.call('LPUSH', KEYS[6], '1')
redis.call('LTRIM', KEYS[6], 0, 63)
return 1
