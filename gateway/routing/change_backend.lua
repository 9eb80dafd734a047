-- RoutingStore.add_backend / remove_backend: an added backend written or removed.
-- KEYS[1] added backends (hash "service address" -> JSON)   KEYS[2] global revision
-- KEYS[3] audit (list)
-- ARGV[1] field   ARGV[2] JSON to add, '' to remove   ARGV[3] audit entry (JSON)
-- ARGV[4] audit entries kept
-- Returns 1 when something changed, 0 when it was already so.
local changed
if ARGV[2] == '' then
  changed = redis.call('HDEL', KEYS[1], ARGV[1])
else
  changed = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
end
if changed == 0 then return 0 end
redis.call('INCR', KEYS[2])
redis.call('LPUSH', KEYS[3], ARGV[3])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
return 1
