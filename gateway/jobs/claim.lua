-- Claim the first runnable batch whose lease ran out (or that never had one): lease it to
-- this worker. A batch whose record expired leaves the runnable set here.
-- KEYS[1]: the runnable set (batch id -> lease deadline, ms); ARGV: lease ms, worker,
-- lease key prefix, batch key prefix. Redis's clock, so replicas' clocks need not agree.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 16)
for _, id in ipairs(due) do
    if redis.call('EXISTS', ARGV[4] .. id) == 0 then
        redis.call('ZREM', KEYS[1], id)
    else
        redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id)
        redis.call('SET', ARGV[3] .. id, ARGV[2], 'PX', ARGV[1])
        return id
    end
end
return false
