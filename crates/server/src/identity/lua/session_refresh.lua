-- KEYS[1] session hash, KEYS[2] used refresh-token hashes (set), KEYS[3] index
-- ARGV[1] hash of the presented refresh token, ARGV[2] hash of its
-- replacement, ARGV[3] ttl ms, ARGV[4] session id, ARGV[5] last_seen
-- Returns 1 rotated, 0 unknown token, -1 reuse detected (session revoked).
local current = redis.call('HGET', KEYS[1], 'refresh_hash')
if not current then
  return 0
end
if current == ARGV[1] then
  redis.call('SADD', KEYS[2], current)
  redis.call('HSET', KEYS[1], 'refresh_hash', ARGV[2], 'last_seen', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
  return 1
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[4])
  return -1
end
return 0
