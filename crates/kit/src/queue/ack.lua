-- KEYS[1] active, KEYS[2] this period's processed counter
-- ARGV[1] job key prefix, ARGV[2] retention ms, ARGV[3] counter lifetime ms,
-- then per job: id, attempt holding the lease, result
-- Marks attempts succeeded (one job, or a worker's burst, in one call),
-- each only if that attempt still holds the lease; a sensitive payload is
-- deleted. Returns one 1 (acked) or 0 (lease no longer held) per job.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[1]
local done = {}
local acked = 0
for i = 4, #ARGV, 3 do
  local id = ARGV[i]
  local job = prefix .. id
  local f = redis.call('HMGET', job, 'attempts', 'state', 'unique_slot', 'sensitive')
  local ok = 0
  if f[1] == ARGV[i + 1] and f[2] == 'running' and redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('HSET', job, 'state', 'succeeded', 'finished_at', now, 'result', ARGV[i + 2])
    if f[4] == '1' then redis.call('HDEL', job, 'payload') end
    if f[3] and f[3] ~= '' then redis.call('DEL', f[3]) end
    redis.call('PEXPIRE', job, ARGV[2])
    ok = 1
    acked = acked + 1
  end
  done[#done + 1] = ok
end
if acked > 0 then
  redis.call('INCRBY', KEYS[2], acked)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return done
