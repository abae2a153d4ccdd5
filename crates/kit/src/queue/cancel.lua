-- KEYS[1] job hash, KEYS[2] ready, KEYS[3] scheduled, KEYS[4] ready_at
-- ARGV[1] id, ARGV[2] retention ms
-- Cancels a scheduled or queued job: 1; -1 no such job; 0 in another state.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[1], 'state', 'unique_slot')
if not f[1] then return -1 end
if f[1] ~= 'queued' and f[1] ~= 'scheduled' then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finished_at', now)
if f[2] and f[2] ~= '' then redis.call('DEL', f[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
