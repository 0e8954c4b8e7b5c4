-- record_stats(prefix, bucket_ms, ttl_ms, now, executions, errors, failures, finished): add
-- outcome counts to the 10 s bucket holding `now` (key prefix .. bucket number, same hash tag).
-- executions: attempts that ended; errors: those that raised (or were lost); failures: jobs
-- that ended failed; finished: jobs that reached any terminal outcome.
local function record_stats(prefix, bucket_ms, ttl_ms, now, executions, errors, failures,
                            finished)
  if executions == 0 and finished == 0 then
    return
  end
  local key = prefix .. math.floor(now / bucket_ms)
  if executions > 0 then
    redis.call('HINCRBY', key, 'executions', executions)
  end
  if finished > 0 then
    redis.call('HINCRBY', key, 'finished', finished)
  end
  if errors > 0 then
    redis.call('HINCRBY', key, 'errors', errors)
  end
  if failures > 0 then
    redis.call('HINCRBY', key, 'failures', failures)
  end
  redis.call('PEXPIRE', key, ttl_ms)
end
