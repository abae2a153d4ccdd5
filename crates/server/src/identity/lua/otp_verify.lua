-- KEYS[1] the pending code (hash: code_hash, attempts)
-- ARGV[1] hash of the presented code, ARGV[2] wrong tries allowed
-- Returns 1 when the code matches (and consumes it), else 0. The code is
-- voided after the last allowed wrong try.
local stored = redis.call('HGET', KEYS[1], 'code_hash')
if not stored then
  return 0
end
if stored == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
local tries = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if tries >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
end
return 0
