-- Write a batch's progress, only while this worker holds its lease (0 otherwise): a worker
-- that lost its lease must not overwrite the progress of the one that took the batch over.
-- Answers 2 when a cancel was asked for, and keeps the status 'cancelling' then (only a
-- final status replaces it). With ARGV[3] = '1' the batch ends: it leaves the runnable set,
-- its owner's open batches, and its lease.
-- KEYS: lease key, batch hash, runnable set, owner's open set.
-- ARGV: worker, batch id, final ('1' or '0'), status ('' keeps it), field, value, ...
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
local answer = 1
if redis.call('HGET', KEYS[2], 'cancel') == '1' then
    answer = 2
end
local status = ARGV[4]
local final = status == 'completed' or status == 'failed' or status == 'cancelled'
    or status == 'expired'
if status ~= '' and (answer == 1 or final) then
    redis.call('HSET', KEYS[2], 'status', status)
end
for i = 5, #ARGV, 2 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
if ARGV[3] == '1' then
    redis.call('ZREM', KEYS[3], ARGV[2])
    redis.call('SREM', KEYS[4], ARGV[2])
    redis.call('DEL', KEYS[1])
end
return answer
