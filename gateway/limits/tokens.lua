-- RateLimiter.tokens_used / spend_tokens: the per-UTC-day budget of generated tokens.
-- Runs after now.lua.
-- KEYS[1]  token budget: hash {d = UTC day number, n = tokens generated on that day}
-- ARGV[1]  tokens to add (0 = only read)    ARGV[2]  now in ms (tests only; '' = TIME)
-- Returns the tokens used today, after adding ARGV[1]. A counter from an earlier day
-- reads as 0; the key expires at the next 00:00 UTC.
local add = tonumber(ARGV[1])
local now = now_us(ARGV[2])
local day = math.floor(now / DAY_US)
local stored = redis.call('HMGET', KEYS[1], 'd', 'n')
local used = 0
if tonumber(stored[1]) == day then used = tonumber(stored[2]) or 0 end
if add > 0 then
  used = used + add
  redis.call('HSET', KEYS[1], 'd', int(day), 'n', int(used))
  redis.call('PEXPIRE', KEYS[1], int(math.ceil(((day + 1) * DAY_US - now) / 1000)))
end
return used
