-- KEYS[1] session hash, KEYS[2] session index
-- ARGV[1] ttl ms, ARGV[2] last_seen timestamp
-- Returns the session's role, or false when the session no longer exists.
local role = redis.call('HGET', KEYS[1], 'role')
if not role then
  return false
end
redis.call('HSET', KEYS[1], 'last_seen', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return role
