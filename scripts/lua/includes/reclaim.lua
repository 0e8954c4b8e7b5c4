-- reclaim(ctx, member, jitter): take back a running job whose lease expired (its worker died or
-- was cut off), freeing its slot in the same step. An action with attempts left waits out its
-- backoff as a failed attempt ("worker lost"); a query is run again (at most
-- ctx.max_query_reruns times); anything else - a mutation above all, which runs at most once -
-- finishes failed. A member with no running job behind it (a timed-out thread's slot, or a
-- hash deleted behind our back) is simply dropped.
-- A job an enqueue handed to a worker (enqueue.lua) and still in that worker's inbox never
-- started: it goes back to the stream as it was, no attempt spent ("undelivered"), or, if a
-- cancel was asked meanwhile, finishes canceled.
-- ctx: job_prefix, running_key, delayed_key, stream_key, callbacks_key, channel, now,
--      max_query_reruns, inbox_prefix (optional), and counters executions/errors/failures it
--      adds to.
-- Returns: retry | requeued | undelivered | failed | canceled | dropped.
local WORKER_LOST = 'worker lost'
local function reclaim(ctx, member, jitter)
  redis.call('ZREM', ctx.running_key, member)
  local job = ctx.job_prefix .. member
  local f = redis.pcall('HMGET', job, 'state', 'kind', 'attempts', 'max_attempts',
                        'initial_backoff_ms', 'base', 'cancel', 'reruns', 'worker')
  if f.err or f[1] ~= 'running' then
    return 'dropped'
  end
  local attempt = tonumber(f[3]) or 1
  if ctx.inbox_prefix and f[9] then
    local inbox = ctx.inbox_prefix .. f[9]
    for _, item in ipairs(redis.call('LRANGE', inbox, 0, -1)) do
      local ok, fields = pcall(cmsgpack.unpack, item)
      if ok and type(fields) == 'table' and fields[1] == member then
        redis.call('LREM', inbox, 1, item)
        if f[7] then
          -- Canceled while it waited: it never starts.
          finish(job, member, 'canceled', 'error', 'canceled', ctx.now, ctx.callbacks_key,
                 ctx.channel)
          return 'canceled'
        end
        local sid = redis.call('XADD', ctx.stream_key, '*', 'id', member)
        redis.call('HSET', job, 'state', 'pending', 'sid', sid, 'attempts', attempt - 1)
        redis.call('HDEL', job, 'worker', 'started_at')
        return 'undelivered'
      end
    end
  end
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
