-- Claim the first runnable batch whose lease ran out (or that never had one): lease it to
-- this worker. KEYS[1]: the runnable set (batch id -> lease deadline, ms); ARGV: lease ms,
-- worker, lease key prefix. Redis's clock, so replicas' clocks need not agree.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
if #due == 0 then
    return false
end
local id = due[1]
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id)
redis.call('SET', ARGV[3] .. id, ARGV[2], 'PX', ARGV[1])
return id
