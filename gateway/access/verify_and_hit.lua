-- KeyStore.verify_count_and_get: the key check and the rate limit in one script. Runs
-- after gateway/limits/now.lua and gateway/limits/hit_function.lua.
-- KEYS[1]  key record (hash)    KEYS[2]  GCRA state    KEYS[3]  day quota
-- ARGV[1]  SHA-256 of the presented key    ARGV[2]  now in ms (tests only; '' = TIME)
-- ARGV[3..]  the tiers, three values each: name, per_minute, per_day (-1 = no cap)
-- Returns {status, role, owner, tier, limits, created_at, per_minute, per_day, hit...}
-- where status is 'ok', 'unknown' (no such key, or another secret), 'revoked' or
-- 'tier' (the key's tier is not configured); the hit's answer follows only for 'ok'.
-- A plain equality of two digests, not constant-time: safe, as gateway/access/keys.py
-- says above VERIFY_AND_HIT_LUA (timing could reveal at most a prefix of a digest).
local record = redis.call('HMGET', KEYS[1], 'hash', 'revoked', 'role', 'owner', 'tier',
                          'limits', 'created_at')
if not record[1] or record[1] ~= ARGV[1] then return {'unknown'} end
local fields = {record[3], record[4], record[5], record[6] or '', record[7] or '0'}
if record[2] == '1' then return {'revoked', unpack(fields)} end
local per_minute, per_day
for i = 3, #ARGV, 3 do
  if ARGV[i] == record[5] then
    per_minute = tonumber(ARGV[i + 1])
    per_day = tonumber(ARGV[i + 2])
  end
end
if not per_minute then return {'tier', unpack(fields)} end
local ok, overrides = pcall(cjson.decode, fields[4])
if ok and type(overrides) == 'table' then
  if type(overrides.per_minute) == 'number' then per_minute = overrides.per_minute end
  if overrides.per_day == cjson.null then per_day = -1
  elseif type(overrides.per_day) == 'number' then per_day = overrides.per_day end
end
local answer = {'ok', fields[1], fields[2], fields[3], fields[4], fields[5], per_minute,
                per_day}
for _, value in ipairs(hit(KEYS[2], KEYS[3], per_minute, per_day, now_us(ARGV[2]))) do
  table.insert(answer, value)
end
return answer
