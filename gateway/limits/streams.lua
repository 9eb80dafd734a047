-- Functions of the stream scripts (open_stream.lua, renew_stream.lua). Streams: a sorted
-- set of lease ids scored by their expiry (us). Each call first drops the expired
-- leases, so a lease whose gateway died frees its slot when its TTL runs out. The key's
-- own TTL follows the latest lease expiry, so an idle subject leaves nothing behind.
local function prune(now)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
end
local function expire_with_last_lease(now)
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', KEYS[1], int(math.max(1, math.ceil((tonumber(last[2]) - now) / 1000))))
end
