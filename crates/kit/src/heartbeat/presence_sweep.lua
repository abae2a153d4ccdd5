-- Claims sessions that stopped beating (their process died): each is
-- removed once, by whichever caller runs this first, so a holder's going
-- offline is reported by exactly one caller.
-- KEYS as in presence_beat.lua; ARGV[1] most sessions to claim,
-- ARGV[2] how long a holder's last-seen time is kept (ms)
-- Returns the holders left with no live session.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local gone = {}
for _, member in ipairs(expired) do
  redis.call('ZREM', KEYS[1], member)
  local holder = string.match(member, '^(%S+) ')
  if holder and redis.call('HINCRBY', KEYS[3], holder, -1) <= 0 then
    redis.call('HDEL', KEYS[3], holder)
    redis.call('ZREM', KEYS[2], holder)
    table.insert(gone, holder)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[2]))
return gone
