-- RateLimiter.hit: one request checked against both limits. Runs after now.lua and
-- hit_function.lua.
-- KEYS[1]  GCRA state    KEYS[2]  day quota
-- ARGV[1]  per_minute (>= 1)    ARGV[2]  per_day (-1 = no daily cap)
-- ARGV[3]  now in ms (tests only; '' = Redis TIME)
return hit(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), now_us(ARGV[3]))
