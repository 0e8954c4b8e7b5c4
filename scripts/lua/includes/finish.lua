-- finish(job, work_id, result, field, payload, now, callbacks_key, channel, known): record a
-- terminal outcome. If the job has an on_complete callback it becomes due now in the callbacks
-- zset in this same step (so it can never be lost); otherwise the status hash starts its TTL.
-- `field` is 'return_value' or 'error'; `payload` is its value. `known` (optional) carries
-- what the caller already read from the hash - {on_complete = value or false, ttl_ms = value
-- or false, clean = true when next_run_at, sid and cancel are absent} - so the hot path makes
-- no extra reads (each redis.call costs microseconds of Lua overhead, per job).
-- finished_count counts the calls, for the stats bucket.
local finished_count = 0
local function finish(job, work_id, result, field, payload, now, callbacks_key, channel, known)
  redis.call('HSET', job, 'state', 'finished', 'result', result, 'finished_at', now, field, payload)
  if not (known and known.clean) then
    redis.call('HDEL', job, 'next_run_at', 'sid', 'cancel')
  end
  local has_callback
  if known then
    has_callback = known.on_complete
  else
    has_callback = redis.call('HEXISTS', job, 'on_complete') == 1
  end
  if has_callback then
    redis.call('HSET', job, 'callback', 'pending')
    redis.call('ZADD', callbacks_key, now, work_id)
  else
    local ttl
    if known then
      ttl = tonumber(known.ttl_ms)
    else
      ttl = tonumber(redis.call('HGET', job, 'ttl_ms'))
    end
    if ttl and ttl >= 0 then
      redis.call('PEXPIRE', job, ttl)
    end
  end
  redis.call('PUBLISH', channel, work_id)
  finished_count = finished_count + 1
end
