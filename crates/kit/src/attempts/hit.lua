-- KEYS[1] counter; ARGV[1] limit; ARGV[2] window in ms.
-- Returns -1 when this attempt is within the limit, else the ms until the
-- window ends.
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
if n > tonumber(ARGV[1]) then
  return ttl
end
return -1
