-- RateLimiter.renew_stream: extend a lease. Runs after now.lua and streams.lua.
-- KEYS[1]  open streams: zset lease id -> expiry (us)
-- ARGV[1]  lease length (us) from now   ARGV[2]  lease id
-- ARGV[3]  now in ms (tests only; '' = Redis TIME)
-- Returns 1 and extends the lease if it is still live, else 0 (it expired: the slot may
-- already belong to another stream).
local now = now_us(ARGV[3])
prune(now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', int(now + tonumber(ARGV[1])), ARGV[2])
expire_with_last_lease(now)
return 1
