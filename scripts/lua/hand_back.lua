--[[
  hand_back: a stopping worker returns what it could not finish within its grace period, so
  another worker takes it at once instead of waiting for the lease to expire. An action or a
  query goes back to the stream, its interrupted attempt not counted; a mutation, which runs at
  most once, finishes failed ("worker stopped"); a callback becomes due again; a timed-out
  thread's slot is freed (the process is about to exit, taking the thread with it). Only items
  this worker still owns are touched.

  KEYS[1] running    (zset)    work id (or slot name) -> lease deadline (ms)
  KEYS[2] stream     (stream)  ready jobs
  KEYS[3] callbacks  (zset)    work id -> due time, or lease deadline while running (ms)
  KEYS[4] wake       (list)    idle workers' wake token
  ARGV[1] job_prefix           status hash key = job_prefix .. work id (same hash tag)
  ARGV[2] worker               id of the stopping worker
  ARGV[3] channel              pub/sub channel told the work id of every finished job
  ARGV[4] stats_prefix         outcome counters key = stats_prefix .. (now // bucket_ms)
  ARGV[5] bucket_ms            width of one stats bucket
  ARGV[6] stats_ttl_ms         how long a stats bucket is kept
  ARGV[7..] per item, 3 values: kind (job | callback | slot), member, attempt
  A job whose cancel was asked while it ran finishes canceled instead of going back.
  Derived keys: job_prefix .. work_id (hash), stats_prefix .. bucket (hash); same hash tag.
  Returns: one code per item: handed_back | failed | canceled | released | stale.
  Complexity: O(log N) per item.
]]
local running_key = KEYS[1]
local stream_key = KEYS[2]
local callbacks_key = KEYS[3]
local wake_key = KEYS[4]
local job_prefix = ARGV[1]
local worker = ARGV[2]
local channel = ARGV[3]
local stats_prefix = ARGV[4]
local bucket_ms = tonumber(ARGV[5])
local stats_ttl_ms = tonumber(ARGV[6])
local FIRST = 7

--- @include "clock"
--- @include "wake"
--- @include "finish"
--- @include "stats"

local now = now_ms()
local executions, failures = 0, 0

local function hand_back_job(member, attempt)
  local job = job_prefix .. member
  local f = redis.pcall('HMGET', job, 'state', 'worker', 'attempts', 'kind', 'cancel')
  if f.err or f[1] ~= 'running' or f[2] ~= worker or tonumber(f[3]) ~= attempt
      or redis.call('ZREM', running_key, member) == 0 then
    return 'stale'
  end
  if f[5] then
    -- Canceled while it ran: it must never start again.
    finish(job, member, 'canceled', 'error', 'worker stopped', now, callbacks_key, channel)
    return 'canceled'
  end
  if f[4] == 'mutation' then
    executions = executions + 1
    failures = failures + 1
    finish(job, member, 'failed', 'error', 'worker stopped', now, callbacks_key, channel)
    return 'failed'
  end
  local sid = redis.call('XADD', stream_key, '*', 'id', member)
  redis.call('HINCRBY', job, 'attempts', -1)
  redis.call('HSET', job, 'state', 'pending', 'sid', sid)
  redis.call('HDEL', job, 'worker', 'started_at')
  return 'handed_back'
end

local function hand_back_callback(member, attempt)
  local job = job_prefix .. member
  local f = redis.pcall('HMGET', job, 'callback', 'callback_worker', 'callback_attempts')
  if f.err or f[1] ~= 'pending' or f[2] ~= worker or tonumber(f[3]) ~= attempt
      or not redis.call('ZSCORE', callbacks_key, member) then
    return 'stale'
  end
  redis.call('ZADD', callbacks_key, now, member)
  redis.call('HINCRBY', job, 'callback_attempts', -1)
  redis.call('HDEL', job, 'callback_worker')
  return 'handed_back'
end

local codes = {}
for i = FIRST, #ARGV, 3 do
  local kind, member, attempt = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if kind == 'job' then
    codes[#codes + 1] = hand_back_job(member, attempt)
  elseif kind == 'callback' then
    codes[#codes + 1] = hand_back_callback(member, attempt)
  elseif redis.call('ZREM', running_key, member) == 1 then
    codes[#codes + 1] = 'released'
  else
    codes[#codes + 1] = 'stale'
  end
end
record_stats(stats_prefix, bucket_ms, stats_ttl_ms, now, executions, failures, failures,
             finished_count)
wake(wake_key)
return codes
