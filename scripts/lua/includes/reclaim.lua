-- reclaim(ctx, member, jitter): take back a running job whose lease expired (its worker died or
-- was cut off), freeing its slot in the same step. An action with attempts left waits out its
-- backoff as a failed attempt ("worker lost"); a query is run again (at most
-- ctx.max_query_reruns times); anything else - a mutation above all, which runs at most once -
-- finishes failed. A member with no running job behind it (a timed-out thread's slot, or a
-- hash deleted behind our back) is simply dropped.
-- ctx: job_prefix, running_key, delayed_key, stream_key, callbacks_key, channel, now,
--      max_query_reruns, and counters executions/errors/failures it adds to.
-- Returns: retry | requeued | failed | canceled | dropped.
local WORKER_LOST = 'worker lost'
local function reclaim(ctx, member, jitter)
  redis.call('ZREM', ctx.running_key, member)
  local job = ctx.job_prefix .. member
  local f = redis.pcall('HMGET', job, 'state', 'kind', 'attempts', 'max_attempts',
                        'initial_backoff_ms', 'base', 'cancel', 'reruns')
  if f.err or f[1] ~= 'running' then
    return 'dropped'
  end
  local attempt = tonumber(f[3]) or 1
  ctx.executions = ctx.executions + 1
  ctx.errors = ctx.errors + 1
  if f[7] then
    finish(job, member, 'canceled', 'error', WORKER_LOST, ctx.now, ctx.callbacks_key, ctx.channel)
    return 'canceled'
  end
  if f[2] == 'action' and attempt < (tonumber(f[4]) or 1) then
    local due = ctx.now + backoff_ms(tonumber(f[5]) or 0, tonumber(f[6]) or 1, attempt, jitter)
    redis.call('ZADD', ctx.delayed_key, due, member)
    redis.call('HSET', job, 'state', 'scheduled', 'next_run_at', due, 'last_error', WORKER_LOST)
    return 'retry'
  end
  if f[2] == 'query' and (tonumber(f[8]) or 0) < ctx.max_query_reruns then
    local sid = redis.call('XADD', ctx.stream_key, '*', 'id', member)
    redis.call('HSET', job, 'state', 'pending', 'sid', sid, 'last_error', WORKER_LOST)
    redis.call('HINCRBY', job, 'reruns', 1)
    return 'requeued'
  end
  ctx.failures = ctx.failures + 1
  finish(job, member, 'failed', 'error', WORKER_LOST, ctx.now, ctx.callbacks_key, ctx.channel)
  return 'failed'
end
