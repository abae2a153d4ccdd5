-- KEYS[1] job hash, KEYS[2] active; ARGV[1] id, ARGV[2] attempt holding
-- the lease, ARGV[3] result, ARGV[4] retention ms
-- Returns 1, or 0 when that attempt no longer holds the lease.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[2] or redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return 0
end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'succeeded', 'finished_at', now, 'result', ARGV[3])
local slot = redis.call('HGET', KEYS[1], 'unique_slot')
if slot and slot ~= '' then redis.call('DEL', slot) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
