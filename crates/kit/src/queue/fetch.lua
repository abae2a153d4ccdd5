-- KEYS[1] ready, KEYS[2] scheduled, KEYS[3] active, KEYS[4] ready_at,
-- KEYS[5] paused flag, KEYS[6] retrying counter
-- ARGV[1] job key prefix (same hash tag), ARGV[2] lease ms,
-- ARGV[3] how many due jobs to promote at most, ARGV[4] how many to lease
-- Promotes due scheduled jobs, then leases up to ARGV[4] ready jobs.
-- Returns {jobs, wait_ms}: each job {id, type, payload, attempt,
-- max_attempts, lease_until, timeout_ms}; wait_ms is how long until the
-- next scheduled job is due (-1: none, or the queue is paused), so an idle
-- worker knows how long it may block.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[5]) == 1 then return {{}, -1} end
local prefix = ARGV[1]
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
if #due > 0 then
  local ids = {}
  for i = 1, #due, 2 do
    local id = due[i]
    local job = prefix .. id
    local fields = redis.call('HMGET', job, 'priority', 'seq', 'state')
    if fields[1] then
      redis.call('ZADD', KEYS[1], (1000 - tonumber(fields[1])) * 1000000000000 + tonumber(fields[2]), id)
      redis.call('ZADD', KEYS[4], tonumber(due[i + 1]), id)
      if fields[3] == 'failed' then redis.call('DECR', KEYS[6]) end
      redis.call('HSET', job, 'state', 'queued')
    end
    ids[#ids + 1] = id
  end
  redis.call('ZREM', KEYS[2], unpack(ids))
end
local lease = tonumber(ARGV[2])
local jobs = {}
local wanted = tonumber(ARGV[4])
while #jobs < wanted do
  local popped = redis.call('ZPOPMIN', KEYS[1])
  if #popped == 0 then break end
  local id = popped[1]
  local job = prefix .. id
  redis.call('ZREM', KEYS[4], id)
  if redis.call('EXISTS', job) == 1 then
    local attempt = redis.call('HINCRBY', job, 'attempts', 1)
    redis.call('HSET', job, 'state', 'running', 'started_at', now, 'lease_until', now + lease)
    redis.call('ZADD', KEYS[3], now + lease, id)
    local f = redis.call('HMGET', job, 'type', 'payload', 'max_attempts', 'timeout_ms')
    jobs[#jobs + 1] = {id, f[1], f[2], attempt, tonumber(f[3]), now + lease, tonumber(f[4] or '0')}
  end
end
local wait = -1
local next_due = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #next_due > 0 then wait = math.max(0, tonumber(next_due[2]) - now) end
return {jobs, wait}
