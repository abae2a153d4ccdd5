-- KEYS[1] session index; then for each session: its hash and its used set.
-- ARGV: the session ids, in the same order.
-- Returns how many sessions existed.
local removed = 0
for i, sid in ipairs(ARGV) do
  removed = removed + redis.call('DEL', KEYS[2 * i])
  redis.call('DEL', KEYS[2 * i + 1])
  redis.call('ZREM', KEYS[1], sid)
end
return removed
