-- finish(job, work_id, result, field, payload, now, callbacks_key, channel): record a terminal
-- outcome. If the job has an on_complete callback it becomes due now in the callbacks zset in
-- this same step (so it can never be lost); otherwise the status hash starts its TTL.
-- `field` is 'return_value' or 'error'; `payload` is its value. finished_count counts the
-- calls, for the stats bucket.
local finished_count = 0
local function finish(job, work_id, result, field, payload, now, callbacks_key, channel)
  redis.call('HSET', job, 'state', 'finished', 'result', result, 'finished_at', now, field, payload)
  redis.call('HDEL', job, 'next_run_at', 'sid', 'cancel')
  if redis.call('HEXISTS', job, 'on_complete') == 1 then
    redis.call('HSET', job, 'callback', 'pending')
    redis.call('ZADD', callbacks_key, now, work_id)
  else
    local ttl = tonumber(redis.call('HGET', job, 'ttl_ms'))
    if ttl and ttl >= 0 then
      redis.call('PEXPIRE', job, ttl)
    end
  end
  redis.call('PUBLISH', channel, work_id)
  finished_count = finished_count + 1
end
