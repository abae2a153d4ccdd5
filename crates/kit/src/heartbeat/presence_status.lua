-- Whether each holder is alive now, and when it was last seen.
-- KEYS[2] holders, KEYS[4] seen (as in presence_beat.lua); ARGV the holders
-- Returns, per holder, {1|0, last seen ms or ''}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, holder in ipairs(ARGV) do
  local expiry = redis.call('ZSCORE', KEYS[2], holder)
  local seen = redis.call('ZSCORE', KEYS[4], holder)
  local alive = 0
  if expiry and tonumber(expiry) > now then alive = 1 end
  out[i] = {alive, seen or ''}
end
return out
