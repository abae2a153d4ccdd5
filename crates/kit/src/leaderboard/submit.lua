-- KEYS[1] board (sorted set); ARGV[1] member, ARGV[2] score,
-- ARGV[3] mode: set | increment | max, ARGV[4] ttl ms for a board that has
-- none yet (0 = keep forever)
-- ARGV[5] the largest absolute score a board may hold
-- Returns {score as string, 0-based rank from the top}; an error reply
-- starting with OUTOFRANGE (and no change) when an increment would take the
-- score beyond the bound.
local mode = ARGV[3]
if mode == 'increment' then
  local current = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
  if math.abs(current + tonumber(ARGV[2])) > tonumber(ARGV[5]) then
    return redis.error_reply('OUTOFRANGE the score would leave the allowed range')
  end
  redis.call('ZINCRBY', KEYS[1], ARGV[2], ARGV[1])
elseif mode == 'max' then
  redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
local ttl = tonumber(ARGV[4])
if ttl > 0 and redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {redis.call('ZSCORE', KEYS[1], ARGV[1]), redis.call('ZREVRANK', KEYS[1], ARGV[1])}
