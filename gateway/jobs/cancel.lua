-- Ask a batch to stop: an open batch becomes 'cancelling' and its runner stops at its next
-- checkpoint. KEYS[1]: the batch hash; ARGV[1]: now (s). False when there is no batch.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
    return false
end
if status == 'validating' or status == 'in_progress' or status == 'finalizing' then
    redis.call('HSET', KEYS[1], 'cancel', '1', 'status', 'cancelling', 'cancelling_at', ARGV[1])
end
return 1
