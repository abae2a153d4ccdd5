-- KEYS[1] board; ARGV[1] member, ARGV[2] radius
-- Returns {rank of the first entry (0-based), {member, score, member, score...}}
-- or false when the member is absent; read in one step so the window and
-- the rank agree.
local rank = redis.call('ZREVRANK', KEYS[1], ARGV[1])
if not rank then
  return false
end
local radius = tonumber(ARGV[2])
local start = math.max(0, rank - radius)
return {start, redis.call('ZREVRANGE', KEYS[1], start, rank + radius, 'WITHSCORES')}
