-- KEYS[1] lock key, KEYS[2] fencing counter (same hash tag)
-- ARGV[1] token, ARGV[2] ttl ms, ARGV[3] fencing counter ttl ms
-- Returns {fencing token, expires_at ms} or false when held.
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
local fence = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {fence, now + tonumber(ARGV[2])}
