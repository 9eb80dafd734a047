-- RedisFailureCounter.count: one invalid credential counted in its address's window.
-- KEYS[1]  the address's counter    ARGV[1]  the window in seconds
-- Returns {failures in the window, seconds left of it}. The first failure opens the
-- window; the counter and its expiry are set in one step, so that a counter can never
-- be left without an expiry.
local count = redis.call('INCR', KEYS[1])
local left = redis.call('TTL', KEYS[1])
if count == 1 or left < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left}
