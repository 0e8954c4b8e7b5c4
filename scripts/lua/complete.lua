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
--- @include "complete_one"
--- @include "head"

local ctx = {job_prefix = job_prefix, running_key = running_key, delayed_key = delayed_key,
             callbacks_key = callbacks_key, channel = channel, now = now_ms(), worker = worker,
             lease_ms = lease_ms, executions = 0, errors = 0, failures = 0, slots_freed = 0}
local codes = {}
for i = FIRST, #ARGV, 5 do
  codes[#codes + 1] = complete_one(ctx, ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2],
                                   ARGV[i + 3], tonumber(ARGV[i + 4]))
end

record_stats(stats_prefix, bucket_ms, stats_ttl_ms, ctx.now, ctx.executions, ctx.errors,
             ctx.failures, finished_count)

-- Freed slots may let waiting work start; callbacks made due here can run at once (leased
-- ones, due only at their lease deadline, need no wake).
local function callback_due()
  local first = head_score(callbacks_key)
  return first ~= nil and first <= ctx.now
end
if ctx.executions + ctx.slots_freed > 0
    and (redis.call('XLEN', stream_key) > 0 or callback_due()) then
  wake(wake_key)
end
return codes
