-- Give a batch back at once (this replica is stopping): any replica may claim it now.
-- KEYS: lease key, runnable set; ARGV: worker, batch id.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('DEL', KEYS[1])
if redis.call('ZSCORE', KEYS[2], ARGV[2]) then
    redis.call('ZADD', KEYS[2], 0, ARGV[2])
end
return 1
