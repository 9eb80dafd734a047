-- The prelude of every rate limit script: time (Redis TIME, or a test's override) and
-- integer formatting. Time inside the scripts is integer microseconds since the epoch
-- (Redis TIME gives seconds and microseconds; ~1.7e15 us is well inside the 2^53 that
-- Lua's doubles hold exactly). Every number the scripts write is formatted with %.0f so
-- a large value is never stored in exponent notation.
local function now_us(override_ms)
  if override_ms ~= '' then
    return tonumber(override_ms) * 1000
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local DAY_US = 86400000000
local function int(x) return string.format('%.0f', x) end
