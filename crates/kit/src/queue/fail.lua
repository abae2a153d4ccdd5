-- KEYS[1] active, KEYS[2] scheduled, KEYS[3] dead, KEYS[4] retrying
-- counter, KEYS[5] this period's failed counter, KEYS[6] signal
-- ARGV[1] job key prefix, ARGV[2] mode: 'fail' or 'reclaim',
-- ARGV[3] id (fail) or how many expired leases to reclaim (reclaim),
-- ARGV[4] attempt holding the lease (fail), ARGV[5] error,
-- ARGV[6] jitter in [0, 1), ARGV[7] dead-job retention ms,
-- ARGV[8] final (1: no retry whatever the attempts left),
-- ARGV[9] counter lifetime ms
-- A failed attempt is retried after its back-off, or the job goes to the
-- dead set once its attempts are spent (or the failure is final), with
-- every attempt's error.
-- fail returns 1 retrying, 2 dead, 0 lease no longer held;
-- reclaim returns how many expired leases it settled.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[1]

local function settle(id, err, final)
  local job = prefix .. id
  if redis.call('ZREM', KEYS[1], id) == 0 then return 0 end
  local f = redis.call('HMGET', job, 'attempts', 'max_attempts', 'backoff_kind', 'backoff_base_ms',
    'backoff_max_ms', 'errors', 'unique_slot', 'sensitive')
  if not f[1] then return 0 end
  local attempts = tonumber(f[1])
  local history = cjson.decode(f[6] or '[]')
  table.insert(history, {attempt = attempts, error = err, at = now})
  redis.call('HSET', job, 'errors', cjson.encode(history), 'last_error', err)
  redis.call('INCR', KEYS[5])
  redis.call('PEXPIRE', KEYS[5], ARGV[9])
  if final or attempts >= tonumber(f[2]) then
    redis.call('HSET', job, 'state', 'dead', 'finished_at', now)
    redis.call('ZADD', KEYS[3], now, id)
    if f[7] and f[7] ~= '' then redis.call('DEL', f[7]) end
    -- A secret is not kept for the dead-job retention either.
    if f[8] == '1' then redis.call('HDEL', job, 'payload') end
    redis.call('PEXPIRE', job, ARGV[7])
    return 2
  end
  local base = tonumber(f[4])
  local delay = base
  if f[3] == 'exponential' then
    delay = math.min(tonumber(f[5]), base * (2 ^ (attempts - 1)))
    -- Equal jitter: half fixed, half random, so retries spread out.
    delay = math.floor(delay / 2 + delay / 2 * tonumber(ARGV[6]))
  end
  redis.call('HSET', job, 'state', 'failed', 'scheduled_for', now + delay)
  redis.call('ZADD', KEYS[2], now + delay, id)
  redis.call('INCR', KEYS[4])
  -- An idle worker learns the retry's due time.
  redis.call('LPUSH', KEYS[6], '1')
  redis.call('LTRIM', KEYS[6], 0, 63)
  return 1
end

if ARGV[2] == 'fail' then
  if redis.call('HGET', prefix .. ARGV[3], 'attempts') ~= ARGV[4] then return 0 end
  return settle(ARGV[3], ARGV[5], ARGV[8] == '1')
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(expired) do settle(id, 'lease expired (worker stopped or hung)', false) end
return #expired
