-- KEYS[1] job hash, KEYS[2] active; ARGV[1] id, ARGV[2] attempt, ARGV[3] lease ms
-- Extends the lease of the attempt still holding it; 1 or 0.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[2] or not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[1], 'lease_until', now + tonumber(ARGV[3]))
return 1
