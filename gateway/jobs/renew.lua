-- Extend this worker's lease on a batch; 0 when the lease is no longer its own.
-- KEYS: the runnable set, the lease key; ARGV: batch id, worker, lease ms.
if redis.call('GET', KEYS[2]) ~= ARGV[2] then
    return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
