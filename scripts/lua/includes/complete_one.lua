-- complete_one(ctx, work_id, attempt, outcome, payload, jitter): record how one attempt ended,
-- freeing its slot. A failed action with attempts left goes back to the delayed set to wait
-- out its backoff; anything else finishes (see finish). An outcome from a worker that no
-- longer owns the job changes nothing ('stale').
-- outcome: ok | error | fatal | timeout (a sync job's thread runs on: an error, and the thread
-- keeps a slot 'thread:<work_id>:<attempt>' until it returns) | release (that thread returned).
-- ctx: job_prefix, running_key, delayed_key, callbacks_key, channel, now, worker, lease_ms,
--      and counters executions/errors/failures/slots_freed it adds to.
-- Returns: success | failed | canceled | retry | stale | released.
local function complete_one(ctx, work_id, attempt, outcome, payload, jitter)
  local running_key = ctx.running_key
  if outcome == 'release' then
    -- The thread of a timed-out job finally returned: its slot is free at last.
    if redis.call('ZREM', running_key, 'thread:' .. work_id .. ':' .. attempt) == 1 then
      ctx.slots_freed = ctx.slots_freed + 1
    end
    return 'released'
  end
  local job = ctx.job_prefix .. work_id
  local f = redis.pcall('HMGET', job, 'state', 'worker', 'attempts', 'kind', 'max_attempts',
                        'initial_backoff_ms', 'base', 'cancel', 'on_complete', 'ttl_ms',
                        'next_run_at', 'sid')
  if f.err or not f[1] then
    -- The status hash is gone or is not a hash: nobody can own this job; free its slot.
    redis.call('ZREM', running_key, work_id)
    return 'stale'
  end
  if f[1] ~= 'running' or f[2] ~= ctx.worker or tonumber(f[3]) ~= attempt then
    return 'stale'
  end
  -- The ZREM doubles as the ownership check: a lease already taken back is not ours to end.
  if redis.call('ZREM', running_key, work_id) == 0 then
    return 'stale'
  end
  if outcome == 'timeout' then
    -- The thread runs on: it keeps a slot of its own until it returns, so the cap holds.
    redis.call('ZADD', running_key, ctx.now + ctx.lease_ms, 'thread:' .. work_id .. ':' .. attempt)
    outcome = 'error'
  end
  ctx.executions = ctx.executions + 1
  local known = {on_complete = f[9] ~= false, ttl_ms = f[10],
                 clean = not (f[8] or f[11] or f[12])}
  if outcome == 'ok' then
    finish(job, work_id, 'success', 'return_value', payload, ctx.now, ctx.callbacks_key,
           ctx.channel, known)
    return 'success'
  end
  ctx.errors = ctx.errors + 1
  if f[8] then
    -- Canceled while running: never retried, and the failure reads as canceled.
    finish(job, work_id, 'canceled', 'error', payload, ctx.now, ctx.callbacks_key, ctx.channel,
           known)
    return 'canceled'
  end
  if outcome == 'error' and f[4] == 'action' and attempt < (tonumber(f[5]) or 1) then
    local due = ctx.now + backoff_ms(tonumber(f[6]) or 0, tonumber(f[7]) or 1, attempt, jitter)
    redis.call('ZADD', ctx.delayed_key, due, work_id)
    redis.call('HSET', job, 'state', 'scheduled', 'next_run_at', due, 'last_error', payload)
    return 'retry'
  end
  ctx.failures = ctx.failures + 1
  finish(job, work_id, 'failed', 'error', payload, ctx.now, ctx.callbacks_key, ctx.channel,
         known)
  return 'failed'
end
