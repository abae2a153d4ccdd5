-- KEYS[1] the family's version counter, KEYS[2] the family's hit/miss hash
-- ARGV[1] the family's key prefix, ARGV[2] the item name
-- Returns {version, value or false}, counting a hit or a miss.
-- The value key is derived here from the version so that reading the
-- version and the value is one step; it carries the family's hash tag
-- (inside ARGV[1]), so it lives in the same slot as KEYS[1] and KEYS[2].
local version = redis.call('GET', KEYS[1]) or '0'
local value = redis.call('GET', ARGV[1] .. version .. ':' .. ARGV[2])
if value then
  redis.call('HINCRBY', KEYS[2], 'hits', 1)
else
  redis.call('HINCRBY', KEYS[2], 'misses', 1)
end
return {version, value}
