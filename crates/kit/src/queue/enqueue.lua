-- KEYS[1] job hash, KEYS[2] ready (zset), KEYS[3] scheduled (zset),
-- KEYS[4] sequence counter, KEYS[5] unique-key slot (KEYS[1] when none),
-- KEYS[6] ready_at (zset: when each ready job became ready),
-- KEYS[7] signal (list waiting workers block on),
-- KEYS[8] dedupe slot (KEYS[1] when none)
-- ARGV: 1 id, 2 type, 3 payload, 4 priority (-1000..1000), 5 delay ms,
-- 6 max attempts, 7 backoff kind, 8 backoff base ms, 9 backoff max ms,
-- 10 timeout ms (0 = none), 11 has unique key (1/0), 12 owner,
-- 13 dedupe window ms (0 = none), 14 sensitive payload (1/0)
-- Returns {id, 1 created | 0 an existing job's id (same unique or dedupe key),
-- 1 when this is the queue's first job since its keys began (its sequence
-- counter was just created: a new queue, or Redis lost its keys) | 0}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local unique = ARGV[11] == '1'
local dedupe = tonumber(ARGV[13]) > 0
if unique then
  local existing = redis.call('GET', KEYS[5])
  if existing then return {existing, 0, 0} end
end
if dedupe then
  local existing = redis.call('GET', KEYS[8])
  if existing then return {existing, 0, 0} end
end
local seq = redis.call('INCR', KEYS[4])
local priority = tonumber(ARGV[4])
local delay = tonumber(ARGV[5])
local state = 'queued'
if delay > 0 then state = 'scheduled' end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'type', ARGV[2], 'payload', ARGV[3], 'priority', priority,
  'seq', seq, 'max_attempts', ARGV[6], 'attempts', 0, 'backoff_kind', ARGV[7], 'backoff_base_ms', ARGV[8],
  'backoff_max_ms', ARGV[9], 'timeout_ms', ARGV[10], 'created_at', now, 'scheduled_for', now + delay,
  'state', state, 'unique_slot', unique and KEYS[5] or '', 'owner', ARGV[12], 'sensitive', ARGV[14])
if delay > 0 then
  redis.call('ZADD', KEYS[3], now + delay, ARGV[1])
else
  redis.call('ZADD', KEYS[2], (1000 - priority) * 1000000000000 + seq, ARGV[1])
  redis.call('ZADD', KEYS[6], now, ARGV[1])
end
-- Wake one blocked worker (for a delayed job: to learn its due time); the
-- cap keeps an idle queue's list small.
redis.call('LPUSH', KEYS[7], '1')
redis.call('LTRIM', KEYS[7], 0, 63)
if unique then redis.call('SET', KEYS[5], ARGV[1]) end
if dedupe then redis.call('SET', KEYS[8], ARGV[1], 'PX', ARGV[13]) end
local first = 0
if seq == 1 then first = 1 end
return {ARGV[1], 1, first}
