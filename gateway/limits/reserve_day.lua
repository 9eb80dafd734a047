-- RateLimiter.reserve_day: take up to ARGV[2] units of the daily quota at once (a bulk
-- request reserves its lines a window at a time, not one Redis call per line), or give
-- back unused ones (a negative count). Runs after now.lua.
-- KEYS[1]  day quota: hash {d = UTC day number, n = requests counted on that day}, as hit
-- ARGV[1]  per_day (>= 0)    ARGV[2]  units wanted (< 0: give back)
-- ARGV[3]  now in ms (tests only; '' = Redis TIME)
-- Returns the units granted: at most what is left today (0 when spent), or, when giving
-- back, minus the units given back (never below an empty count).
local per_day = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local now = now_us(ARGV[3])
local day = math.floor(now / DAY_US)
local stored = redis.call('HMGET', KEYS[1], 'd', 'n')
local used = 0
if tonumber(stored[1]) == day then used = tonumber(stored[2]) or 0 end
local granted
if wanted >= 0 then
  granted = math.max(0, math.min(wanted, per_day - used))
else
  granted = -math.min(-wanted, used)
end
if granted ~= 0 then
  redis.call('HSET', KEYS[1], 'd', int(day), 'n', int(used + granted))
  redis.call('PEXPIRE', KEYS[1], int(math.ceil(((day + 1) * DAY_US - now) / 1000)))
end
return granted
