-- KEYS[1] job hash, KEYS[2] active, KEYS[3] this period's processed counter
-- ARGV[1] id, ARGV[2] attempt holding the lease, ARGV[3] result,
-- ARGV[4] retention ms, ARGV[5] counter lifetime ms
-- Returns 1, or 0 when that attempt no longer holds the lease.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[1], 'attempts', 'state', 'unique_slot', 'sensitive')
if f[1] ~= ARGV[2] or f[2] ~= 'running' then return 0 end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'succeeded', 'finished_at', now, 'result', ARGV[3])
-- A sensitive payload (a mail carrying a login code) is not kept once done.
if f[4] == '1' then redis.call('HDEL', KEYS[1], 'payload') end
if f[3] and f[3] ~= '' then redis.call('DEL', f[3]) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return 1
