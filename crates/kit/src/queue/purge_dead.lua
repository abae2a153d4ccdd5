-- KEYS[1] dead; ARGV[1] job key prefix, ARGV[2] how many at most
-- Deletes up to ARGV[2] dead jobs (records and set entries); returns how many.
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
for _, id in ipairs(ids) do redis.call('DEL', ARGV[1] .. id) end
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return #ids
