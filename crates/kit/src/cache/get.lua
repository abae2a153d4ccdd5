-- KEYS[1] the family's version counter, KEYS[2] the family's hit/miss hash
-- ARGV[1] the family's key prefix, ARGV[2] the item name
-- ARGV[3] (optional) the family's per-key prefix: when given, the item's own
--   hit or miss counter is INCRBY'd too, and a miss is ranked in the
--   family's `missed` sorted set with its recipe (ARGV[4]) kept beside it
--   in the `recipes` hash, so the most-missed items can be recomputed;
-- ARGV[5] how long per-key counts live (ms), ARGV[6] how many items the
--   ranking keeps (the least missed are dropped first).
-- Returns {version, value or false}, counting a hit or a miss.
-- Every key is derived here from a prefix that carries the family's hash
-- tag, so they all live in the same slot as KEYS[1] and KEYS[2].
local version = redis.call('GET', KEYS[1]) or '0'
local value = redis.call('GET', ARGV[1] .. version .. ':' .. ARGV[2])
local outcome = value and 'hits' or 'misses'
redis.call('HINCRBY', KEYS[2], outcome, 1)
if ARGV[3] and ARGV[3] ~= '' then
  local ttl = tonumber(ARGV[5])
  local counter = ARGV[3] .. outcome .. ':' .. ARGV[2]
  redis.call('INCRBY', counter, 1)
  redis.call('PEXPIRE', counter, ttl)
  if not value then
    local missed, recipes = ARGV[3] .. 'missed', ARGV[3] .. 'recipes'
    redis.call('ZINCRBY', missed, 1, ARGV[2])
    redis.call('HSET', recipes, ARGV[2], ARGV[4])
    local over = redis.call('ZCARD', missed) - tonumber(ARGV[6])
    if over > 0 then
      local dropped = redis.call('ZPOPMIN', missed, over)
      for i = 1, #dropped, 2 do
        redis.call('HDEL', recipes, dropped[i])
      end
    end
    redis.call('PEXPIRE', missed, ttl)
    redis.call('PEXPIRE', recipes, ttl)
  end
end
return {version, value}
