-- Forwards a typing signal unless the same user signalled in the same
-- room within the throttle window; nothing is stored but the window.
-- KEYS[1] the (user, room) throttle key
-- ARGV[1] the room's signal channel; ARGV[2] the payload; ARGV[3] window ms
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
  return 1
end
return 0
