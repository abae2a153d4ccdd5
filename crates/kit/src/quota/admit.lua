-- KEYS[1] the owner's set of names, KEYS[2] the set of owners
-- ARGV: 1 name, 2 limit, 3 owner
-- Admits `name` for the owner: a name already admitted always is; a new
-- one only while the owner has fewer than `limit`, and it is recorded in
-- the same atomic step, so concurrent creators never pass the limit.
-- Returns 1 (admitted) or 0 (refused: the owner is at the limit).
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 1
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
