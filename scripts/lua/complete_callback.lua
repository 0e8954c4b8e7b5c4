--[[
  complete_callback: record how on_complete calls ended. A callback that returned is done and
  never runs again; one that raised is retried after its backoff until it has used
  max_attempts, then recorded as failed. Either way the status hash then starts its TTL.
  A report from a worker that no longer holds the callback's lease (stale) changes nothing.

  KEYS[1] callbacks  (zset)    work id -> due time (ms) of its callback
  ARGV[1] job_prefix           status hash key = job_prefix .. work id (same hash tag)
  ARGV[2] worker               id of the reporting worker
  ARGV[3] max_attempts         callback attempts before it is recorded failed
  ARGV[4..] per callback, 4 values: work_id, attempt, error ('' when it returned), backoff_ms
  Derived keys: job_prefix .. work_id (hash, same hash tag).
  Returns: one code per callback: done | retry | failed | stale.
  Complexity: O(log N) per callback.
]]
local callbacks_key = KEYS[1]
local job_prefix = ARGV[1]
local worker = ARGV[2]
local max_attempts = tonumber(ARGV[3])
local FIRST = 4

--- @include "clock"

local now = now_ms()

local function expire(job)
  local ttl = tonumber(redis.call('HGET', job, 'ttl_ms'))
  if ttl and ttl >= 0 then
    redis.call('PEXPIRE', job, ttl)
  end
end

local function complete_one(work_id, attempt, err, backoff_ms)
  local job = job_prefix .. work_id
  local f = redis.pcall('HMGET', job, 'callback', 'callback_worker', 'callback_attempts')
  if f.err or f[1] ~= 'pending' or f[2] ~= worker or tonumber(f[3]) ~= attempt
      or not redis.call('ZSCORE', callbacks_key, work_id) then
    return 'stale'
  end
  if err == '' then
    redis.call('ZREM', callbacks_key, work_id)
    redis.call('HSET', job, 'callback', 'done', 'callback_finished_at', now)
    redis.call('HDEL', job, 'callback_worker')
    expire(job)
    return 'done'
  end
  if attempt < max_attempts then
    redis.call('ZADD', callbacks_key, now + backoff_ms, work_id)
    redis.call('HSET', job, 'callback_error', err)
    -- Nobody holds it until it is claimed again: a repeated report is stale.
    redis.call('HDEL', job, 'callback_worker')
    return 'retry'
  end
  redis.call('ZREM', callbacks_key, work_id)
  redis.call('HSET', job, 'callback', 'failed', 'callback_error', err, 'callback_finished_at', now)
  redis.call('HDEL', job, 'callback_worker')
  expire(job)
  return 'failed'
end

local codes = {}
for i = FIRST, #ARGV, 4 do
  codes[#codes + 1] = complete_one(ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2],
                                   tonumber(ARGV[i + 3]))
end
return codes
