-- record_stats(prefix, bucket_ms, ttl_ms, now, executions, errors, failures): add outcome
-- counts to the 10 s bucket holding `now` (key prefix .. bucket number, same hash tag).
local function record_stats(prefix, bucket_ms, ttl_ms, now, executions, errors, failures)
  if executions == 0 then
    return
  end
  local key = prefix .. math.floor(now / bucket_ms)
  redis.call('HINCRBY', key, 'executions', executions)
  if errors > 0 then
    redis.call('HINCRBY', key, 'errors', errors)
  end
  if failures > 0 then
    redis.call('HINCRBY', key, 'failures', failures)
  end
  redis.call('PEXPIRE', key, ttl_ms)
end
