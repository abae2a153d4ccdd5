-- KEYS[1] the family's version counter; ARGV[1] the family's key prefix,
-- ARGV[2] the item name, ARGV[3] the value, ARGV[4] ttl ms.
-- Stores under the current version (same slot: see get.lua).
local version = redis.call('GET', KEYS[1]) or '0'
redis.call('SET', ARGV[1] .. version .. ':' .. ARGV[2], ARGV[3], 'PX', ARGV[4])
return 1
