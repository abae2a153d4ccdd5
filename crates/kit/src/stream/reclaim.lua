-- KEYS[1] stream, KEYS[2] its dead-letter stream
-- ARGV: 1 group, 2 consumer, 3 min idle ms, 4 count, 5 max deliveries,
-- 6 dead-letter stream max length (approximate)
-- Takes over, for the consumer, up to `count` entries the group delivered
-- and nobody acknowledged for `min idle` ms. An entry already delivered
-- `max deliveries` times is copied to the dead-letter stream and
-- acknowledged instead, in this same atomic step, so it is neither lost nor
-- delivered again. XCLAIM resets an entry's idle time, so concurrent
-- reclaimers never take the same entry.
-- Returns {{{id, {field, value, ...}, deliveries}, ...}, {dead id, ...}}.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', ARGV[4])
local max = tonumber(ARGV[5])
local claimed, dead = {}, {}
for _, p in ipairs(pending) do
  local id, deliveries = p[1], p[4]
  if deliveries >= max then
    local entry = redis.call('XRANGE', KEYS[1], id, id)
    if entry[1] then
      local copy = {'source_id', id, 'group', ARGV[1], 'deliveries', deliveries}
      for _, v in ipairs(entry[1][2]) do copy[#copy + 1] = v end
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', unpack(copy))
    end
    redis.call('XACK', KEYS[1], ARGV[1], id)
    dead[#dead + 1] = id
  else
    -- An entry trimmed from the stream meanwhile comes back as nothing
    -- (Redis 7 also drops it from the pending list) or as nil (6.2).
    local entry = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], id)[1]
    if type(entry) == 'table' then
      claimed[#claimed + 1] = {entry[1], entry[2], deliveries + 1}
    elseif entry ~= nil then
      redis.call('XACK', KEYS[1], ARGV[1], id)
    end
  end
end
return {claimed, dead}
