--[[
  complete: record the outcomes of attempts that ended, freeing their slots in the same step.
  A failed action with attempts left goes back to the delayed set to wait out its backoff
  (holding no slot); anything else finishes, and its callback (if any) becomes due atomically.
  An outcome from a worker that no longer owns the job (stale) changes nothing.

  KEYS[1] running    (zset)    work id -> lease deadline (ms)
  KEYS[2] delayed    (zset)    work id -> due time (ms)
  KEYS[3] stream     (stream)  ready jobs
  KEYS[4] wake       (list)    idle workers' wake token
  KEYS[5] callbacks  (zset)    work id -> due time (ms) of its callback
  ARGV[1] job_prefix           status hash key = job_prefix .. work id (same hash tag)
  ARGV[2] stats_prefix         outcome counters key = stats_prefix .. (now // bucket_ms)
  ARGV[3] bucket_ms            width of one stats bucket
  ARGV[4] stats_ttl_ms         how long a stats bucket is kept
  ARGV[5] channel              pub/sub channel told the work id of every finished job
  ARGV[6] worker               id of the reporting worker
  ARGV[7] lease_ms             lease of the slot a timed-out thread keeps
  ARGV[8..] per outcome, 5 values: work_id, attempt, outcome, payload, jitter
            outcome: ok (payload = msgpack return value) | error (payload = error text, may be
            retried) | fatal (payload = error text, never retried) | timeout (a sync job ran
            past its timeout and its thread still runs: an error, and the thread keeps a slot
            'thread:<work_id>:<attempt>' in the running set) | release (that thread returned:
            free its slot); jitter: factor in [0.5, 1.5)
  Derived keys: job_prefix .. work_id (hash), stats_prefix .. bucket (hash); same hash tag.
  Returns: one code per outcome: success | failed | canceled | retry | stale | released.
  Complexity: O(log N) per outcome.
]]
local running_key = KEYS[1]
local delayed_key = KEYS[2]
local stream_key = KEYS[3]
local wake_key = KEYS[4]
local callbacks_key = KEYS[5]

local job_prefix = ARGV[1]
local stats_prefix = ARGV[2]
local bucket_ms = tonumber(ARGV[3])
local stats_ttl_ms = tonumber(ARGV[4])
local channel = ARGV[5]
local worker = ARGV[6]
local lease_ms = tonumber(ARGV[7])
local FIRST = 8

--- @include "clock"
--- @include "wake"
--- @include "finish"
--- @include "backoff"
--- @include "stats"

local now = now_ms()
local executions, errors, failures, slots_freed = 0, 0, 0, 0
local codes = {}

local function thread_slot(work_id, attempt)
  return 'thread:' .. work_id .. ':' .. attempt
end

local function complete_one(work_id, attempt, outcome, payload, jitter)
  if outcome == 'release' then
    -- The thread of a timed-out job finally returned: its slot is free at last.
    if redis.call('ZREM', running_key, thread_slot(work_id, attempt)) == 1 then
      slots_freed = slots_freed + 1
    end
    return 'released'
  end
  local job = job_prefix .. work_id
  local f = redis.pcall('HMGET', job, 'state', 'worker', 'attempts', 'kind', 'max_attempts',
                        'initial_backoff_ms', 'base', 'cancel')
  if f.err or not f[1] then
    -- The status hash is gone or is not a hash: nobody can own this job; free its slot.
    redis.call('ZREM', running_key, work_id)
    return 'stale'
  end
  if f[1] ~= 'running' or f[2] ~= worker or tonumber(f[3]) ~= attempt
      or not redis.call('ZSCORE', running_key, work_id) then
    return 'stale'
  end
  redis.call('ZREM', running_key, work_id)
  if outcome == 'timeout' then
    -- The thread runs on: it keeps a slot of its own until it returns, so the cap holds.
    redis.call('ZADD', running_key, now + lease_ms, thread_slot(work_id, attempt))
    outcome = 'error'
  end
  executions = executions + 1
  if outcome == 'ok' then
    finish(job, work_id, 'success', 'return_value', payload, now, callbacks_key, channel)
    return 'success'
  end
  errors = errors + 1
  if f[8] then
    -- Canceled while running: never retried, and the failure reads as canceled.
    finish(job, work_id, 'canceled', 'error', payload, now, callbacks_key, channel)
    return 'canceled'
  end
  local max_attempts = tonumber(f[5]) or 1
  if outcome == 'error' and f[4] == 'action' and attempt < max_attempts then
    local due = now + backoff_ms(tonumber(f[6]) or 0, tonumber(f[7]) or 1, attempt, jitter)
    redis.call('ZADD', delayed_key, due, work_id)
    redis.call('HSET', job, 'state', 'scheduled', 'next_run_at', due, 'last_error', payload)
    return 'retry'
  end
  failures = failures + 1
  finish(job, work_id, 'failed', 'error', payload, now, callbacks_key, channel)
  return 'failed'
end

for i = FIRST, #ARGV, 5 do
  codes[#codes + 1] = complete_one(ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3],
                                   tonumber(ARGV[i + 4]))
end

record_stats(stats_prefix, bucket_ms, stats_ttl_ms, now, executions, errors, failures,
             finished_count)

-- Freed slots may let waiting work start; callbacks made due here can run at once (leased
-- ones, due only at their lease deadline, need no wake).
local function callback_due()
  local first = redis.call('ZRANGE', callbacks_key, 0, 0, 'WITHSCORES')
  return #first > 0 and tonumber(first[2]) <= now
end
if executions + slots_freed > 0 and (redis.call('XLEN', stream_key) > 0 or callback_due()) then
  wake(wake_key)
end
return codes
