-- KEYS[1] ready, KEYS[2] scheduled, KEYS[3] active
-- ARGV[1] job key prefix (same hash tag), ARGV[2] default lease ms,
-- ARGV[3] how many due jobs to promote at most
-- Promotes due scheduled jobs, then leases the first ready job.
-- Returns {id, type, payload, attempt, max_attempts, lease_until} or false.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[1]
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
if #due > 0 then
  for _, id in ipairs(due) do
    local job = prefix .. id
    local fields = redis.call('HMGET', job, 'priority', 'seq')
    if fields[1] then
      redis.call('ZADD', KEYS[1], (1000 - tonumber(fields[1])) * 1000000000000 + tonumber(fields[2]), id)
      redis.call('HSET', job, 'state', 'queued')
    end
  end
  redis.call('ZREM', KEYS[2], unpack(due))
end
while true do
  local popped = redis.call('ZPOPMIN', KEYS[1])
  if #popped == 0 then return false end
  local id = popped[1]
  local job = prefix .. id
  if redis.call('EXISTS', job) == 1 then
    local attempt = redis.call('HINCRBY', job, 'attempts', 1)
    local timeout = tonumber(redis.call('HGET', job, 'timeout_ms') or '0')
    local lease = timeout > 0 and timeout or tonumber(ARGV[2])
    redis.call('HSET', job, 'state', 'running', 'started_at', now, 'lease_until', now + lease)
    redis.call('ZADD', KEYS[3], now + lease, id)
    local f = redis.call('HMGET', job, 'type', 'payload', 'max_attempts')
    return {id, f[1], f[2], attempt, tonumber(f[3]), now + lease}
  end
end
