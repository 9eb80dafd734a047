-- RateLimiter.open_stream: take a stream slot. Runs after now.lua and streams.lua.
-- KEYS[1]  open streams: zset lease id -> expiry (us)
-- ARGV[1]  max_streams   ARGV[2]  lease length (us)   ARGV[3]  lease id
-- ARGV[4]  now in ms (tests only; '' = Redis TIME)
-- Returns 1 and adds the lease when fewer than max_streams live leases exist, else 0.
local now = now_us(ARGV[4])
prune(now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], int(now + tonumber(ARGV[2])), ARGV[3])
expire_with_last_lease(now)
return 1
