-- Decides one request against several limits at once, atomically.
--
-- KEYS[i]   the state key of limit i (all keys share one hash tag)
-- ARGV[1]   number of limits n
-- ARGV[2]   cost of this request
-- ARGV[3]   1 = only look (decide, write nothing), 0 = consume when allowed
-- ARGV[3+4(i-1)+1 .. +4]  for limit i: algorithm, p1, p2, p3
--   1 fixed window      p1 limit, p2 window ms
--   2 sliding log       p1 limit, p2 window ms
--   3 sliding counter   p1 limit, p2 window ms
--   4 token bucket      p1 capacity, p2 refill per second, p3 unused
--   5 gcra              p1 rate per second, p2 burst
-- Returns, per limit: allowed (1/0), limit, remaining, reset_after ms,
-- retry_after ms (-1 when allowed, -2 when the cost can never fit).
-- A request is allowed only if every limit allows it; if any denies,
-- nothing is written to any of them (a denied request consumes nothing).

local n = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local dry_run = ARGV[3] == '1'
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)

-- Both filled by index. No closures and no tables per limit: this script
-- runs on every rate-limited request, and in Redis's Lua each allocation is
-- paid again by the collector. Presized for the usual single limit (a table
-- grown one entry at a time is reallocated at 1, 2, 4 and 8 entries).
local results = n == 1 and {0, 0, 0, 0, 0} or {}
-- What limit i writes if the request is allowed: plan[5i-4] its algorithm,
-- plan[5i-3 .. 5i] the numbers that write needs.
local plan = n == 1 and {0, 0, 0, 0, 0} or {}
local all_allowed = true

local function ceil_div(a, b) return math.floor((a + b - 1) / b) end
-- A TTL Redis accepts: whole ms, at least 1, at most about 317 years
-- (larger values are refused, and Lua would write them in exponent form).
local function ttl_ms(ms) return math.min(1e13, math.max(1, math.ceil(ms))) end
-- A sliding-log member '<total>:<cost>' (see algorithm 2): total, cost.
local function log_entry(member)
  local sep = string.find(member, ':', 1, true)
  return tonumber(string.sub(member, 1, sep - 1)), tonumber(string.sub(member, sep + 1))
end

for i = 1, n do
  local base = 3 + 4 * (i - 1)
  local algo = tonumber(ARGV[base + 1])
  local p1 = tonumber(ARGV[base + 2])
  local p2 = tonumber(ARGV[base + 3])
  local key = KEYS[i]
  local allowed, limit, remaining, reset_after, retry_after
  local w1, w2, w3, w4

  if algo == 1 then
    limit = p1
    local window = p2
    local count = tonumber(redis.call('GET', key) or '0')
    local ttl = redis.call('PTTL', key)
    if count == 0 or ttl < 0 then ttl = window end
    allowed = count + cost <= limit
    remaining = allowed and (limit - count - cost) or math.max(0, limit - count)
    reset_after = ttl
    if allowed then retry_after = -1
    elseif cost > limit then retry_after = -2
    else retry_after = ttl end
    w1 = window

  elseif algo == 2 then
    -- The log: one entry per allowed request, whatever its cost. Score: the
    -- Redis time (µs) of the request; member '<total>:<cost>', total being the
    -- running sum of the costs of every entry up to and including this one.
    -- Scores strictly increase (see the write), so rank order is time order
    -- and the total grows with rank: the cost in the window is
    -- total(newest) - total(oldest in window) + cost(oldest in window), each
    -- read by rank in O(log n). Entries at or before the cutoff have left the
    -- window and are never counted, trimmed or not. Commands per call, for
    -- any limit and cost: 3 to decide, 3 to write (trimming at most 64 expired
    -- entries), and on a denial ZCARD plus at most log2(entries in the window)
    -- ZRANGEs to find the retry time (at most 20 for a million).
    -- Totals are exact while they stay below 2^53 (a Lua number), over the
    -- life of the key (it expires one window after its last write).
    -- Logs the earlier script wrote (one member '<now_us>-<n>' per unit of
    -- cost) live under another key name ('sliding_window', see mod.rs): they
    -- are never read here, and expire on their own within one window.
    limit = p1
    local window_us = p2 * 1000
    local cutoff = now_us - window_us
    local expired = redis.call('ZCOUNT', key, '-inf', cutoff)
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    local total, newest_at, used = 0, 0, 0
    local oldest_total, oldest_at
    if newest[1] then
      total = log_entry(newest[1])
      newest_at = tonumber(newest[2])
      if newest_at > cutoff then
        local oldest = redis.call('ZRANGE', key, expired, expired, 'WITHSCORES')
        local oldest_cost
        oldest_total, oldest_cost = log_entry(oldest[1])
        oldest_at = tonumber(oldest[2])
        used = total - oldest_total + oldest_cost
      end
    end
    allowed = used + cost <= limit
    remaining = allowed and (limit - used - cost) or math.max(0, limit - used)
    if oldest_at then
      reset_after = math.max(0, ceil_div(oldest_at + window_us - now_us, 1000))
    else
      reset_after = p2
    end
    if allowed then retry_after = -1
    elseif cost > limit then retry_after = -2
    else
      -- It fits once every entry up to the first whose total reaches
      -- total + cost - limit has left the window: the oldest alone when it
      -- frees enough (the usual case), else a binary search over the ranks
      -- after it (the newest always frees enough, as cost <= limit).
      local target = total + cost - limit
      local at = oldest_at
      if oldest_total < target then
        local lo, hi = expired + 1, redis.call('ZCARD', key) - 1
        at = newest_at
        while lo < hi do
          local mid = math.floor((lo + hi) / 2)
          local entry = redis.call('ZRANGE', key, mid, mid, 'WITHSCORES')
          if log_entry(entry[1]) >= target then hi, at = mid, tonumber(entry[2])
          else lo = mid + 1 end
        end
      end
      retry_after = math.max(1, ceil_div(at + window_us - now_us, 1000))
    end
    w1, w2, w3, w4 = p2, total, newest_at, expired

  elseif algo == 3 then
    limit = p1
    local window = p2
    local idx = math.floor(now_ms / window)
    local elapsed = now_ms - idx * window
    local state = redis.call('HMGET', key, 'w', 'cur', 'prev')
    local w, cur, prev = tonumber(state[1]), tonumber(state[2] or '0'), tonumber(state[3] or '0')
    if w == nil then cur, prev = 0, 0
    elseif w == idx - 1 then prev, cur = cur, 0
    elseif w ~= idx then cur, prev = 0, 0 end
    local weight = (window - elapsed) / window
    local estimate = prev * weight + cur
    allowed = estimate + cost <= limit
    remaining = math.max(0, math.floor(limit - estimate - (allowed and cost or 0)))
    reset_after = window - elapsed
    if allowed then retry_after = -1
    elseif cost > limit then retry_after = -2
    else
      local budget = limit - cur - cost
      if budget >= 0 and prev > 0 then
        -- prev * (window - e) / window <= budget  =>  e >= window * (1 - budget / prev)
        local need = math.ceil(window * (1 - budget / prev))
        retry_after = math.max(1, need - elapsed)
      else
        -- Not within this window: in the next, the current count weighs in.
        local next_budget = limit - cost
        local need = 0
        if cur + cost > limit and cur > 0 then need = math.ceil(window * (1 - next_budget / cur)) end
        retry_after = math.max(1, (window - elapsed) + math.max(0, need))
      end
    end
    w1, w2, w3, w4 = idx, cur + cost, prev, window

  elseif algo == 4 then
    -- Kept as one number: the Redis time (µs) at which the bucket is full
    -- again (no key: full). Tokens now = capacity - (full_at - now) / interval.
    -- One GET and one SET PX, where a {tokens, ts} hash took HMGET, HSET and
    -- PEXPIRE: 12 % fewer Redis instructions per decision (callgrind). A hash
    -- left by an earlier version is read once (GET answers WRONGTYPE) and
    -- replaced by the SET.
    local capacity = p1
    local interval = 1000000 / p2
    local tolerance = capacity * interval
    limit = capacity
    local stored = redis.pcall('GET', key)
    local full_at
    if type(stored) == 'table' and stored.err then
      local state = redis.call('HMGET', key, 'tokens', 'ts')
      local tokens, ts = tonumber(state[1]), tonumber(state[2])
      if tokens and ts then full_at = ts + (capacity - tokens) * interval end
    else
      full_at = tonumber(stored)
    end
    if full_at == nil or full_at < now_us then full_at = now_us end
    -- µs of refill owed once this request is served; a millionth of a token
    -- of slack absorbs the rounding of these sums (n tokens allow n, not n-1).
    local owed = full_at - now_us + interval * cost
    allowed = owed <= tolerance + interval * 1e-6
    if allowed then
      remaining = math.max(0, math.floor((tolerance - owed) / interval + 1e-6))
      reset_after = math.ceil(owed / 1000)
      retry_after = -1
    else
      remaining = math.max(0, math.floor((tolerance - (full_at - now_us)) / interval + 1e-6))
      reset_after = math.ceil((full_at - now_us) / 1000)
      if cost > capacity then retry_after = -2
      else retry_after = math.max(1, math.ceil((owed - tolerance) / 1000)) end
    end
    w1 = owed

  else
    -- GCRA: emission interval T = 1/rate; tolerance = T * (burst + 1).
    local rate = p1
    local burst = p2
    limit = burst + 1
    local interval = 1000000 / rate
    local tolerance = interval * (burst + 1)
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now_us then tat = now_us end
    local new_tat = tat + interval * cost
    local allow_at = new_tat - tolerance
    allowed = now_us >= allow_at
    if allowed then
      remaining = math.floor((now_us - allow_at) / interval)
      reset_after = math.ceil((new_tat - now_us) / 1000)
      retry_after = -1
    else
      remaining = math.max(0, math.floor((now_us - (tat - tolerance)) / interval))
      reset_after = math.ceil((tat - now_us) / 1000)
      if interval * cost > tolerance then retry_after = -2
      else retry_after = math.max(1, math.ceil((allow_at - now_us) / 1000)) end
    end
    w1 = new_tat
  end

  if not allowed then all_allowed = false end
  local r = 5 * (i - 1)
  results[r + 1] = allowed and 1 or 0
  results[r + 2] = limit
  results[r + 3] = remaining
  results[r + 4] = reset_after
  results[r + 5] = retry_after
  plan[r + 1], plan[r + 2], plan[r + 3], plan[r + 4], plan[r + 5] = algo, w1, w2, w3, w4
end

if all_allowed and not dry_run then
  for i = 1, n do
    local r = 5 * (i - 1)
    local key, algo, w1, w2, w3, w4 = KEYS[i], plan[r + 1], plan[r + 2], plan[r + 3], plan[r + 4], plan[r + 5]
    if algo == 1 then
      -- w1 window
      local v = redis.call('INCRBY', key, cost)
      if v == cost or redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ttl_ms(w1)) end
    elseif algo == 2 then
      -- w1 window ms, w2 the log's total, w3 its newest entry's time (0: no
      -- entry), w4 how many entries have left the window. A cost of 0 writes
      -- nothing (its entry would repeat the newest's member). The new entry
      -- goes 1 µs after the newest when Redis's clock has not moved past it
      -- (same µs, or the clock stepped back), so scores strictly increase
      -- and no two entries tie (ties would be ordered by member, not total).
      if cost > 0 then
        if w4 > 0 then redis.call('ZREMRANGEBYRANK', key, 0, math.min(w4, 64) - 1) end
        local at = math.max(now_us, w3 + 1)
        redis.call('ZADD', key, at, string.format('%.0f:%.0f', w2 + cost, cost))
        redis.call('PEXPIRE', key, ttl_ms(w1 + (at - now_us) / 1000))
      end
    elseif algo == 3 then
      -- w1 window index, w2 its count, w3 the previous window's, w4 window
      redis.call('HSET', key, 'w', w1, 'cur', w2, 'prev', w3)
      redis.call('PEXPIRE', key, ttl_ms(w4 * 2))
    elseif algo == 4 then
      -- w1 µs owed; a Lua number reaches Redis with all its digits (%.17g)
      redis.call('SET', key, now_us + w1, 'PX', ttl_ms(w1 / 1000))
    else
      -- w1 the new theoretical arrival time
      redis.call('SET', key, string.format('%.0f', w1), 'PX', ttl_ms((w1 - now_us) / 1000))
    end
  end
end
return results
