-- RoutingStore.change: a routing table written with a compare-and-set on its revision.
-- KEYS[1] tables (hash model -> JSON)   KEYS[2] global revision   KEYS[3] audit (list)
-- ARGV[1] model   ARGV[2] expected revision of the model's table (-1: no table yet)
-- ARGV[3] new table (JSON)   ARGV[4] audit entry (JSON)   ARGV[5] audit entries kept
-- Returns {1, global revision} when written, {0, the table's actual revision} when not.
local current = redis.call('HGET', KEYS[1], ARGV[1])
local revision = -1
if current then revision = cjson.decode(current)['revision'] end
if revision ~= tonumber(ARGV[2]) then return {0, revision} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local global = redis.call('INCR', KEYS[2])
redis.call('LPUSH', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
return {1, global}
