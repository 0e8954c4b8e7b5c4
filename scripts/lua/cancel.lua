--[[
  cancel: stop jobs from ever starting again. Ready, delayed and backing-off jobs finish as
  canceled at once (their callbacks become due in the same step). A running job is only marked:
  it is let finish, is never retried, and a failure then reads as canceled.

  KEYS[1] stream     (stream)  ready jobs
  KEYS[2] delayed    (zset)    work id -> due time (ms)
  KEYS[3] callbacks  (zset)    work id -> due time (ms) of its callback
  KEYS[4] wake       (list)    idle workers' wake token
  ARGV[1] job_prefix           status hash key = job_prefix .. work id (same hash tag)
  ARGV[2] channel              pub/sub channel told the work id of every finished job
  ARGV[3] stats_prefix         outcome counters key = stats_prefix .. (now // bucket_ms)
  ARGV[4] bucket_ms            width of one stats bucket
  ARGV[5] stats_ttl_ms         how long a stats bucket is kept
  ARGV[6..] work ids
  Derived keys: job_prefix .. work_id (hash), stats_prefix .. bucket (hash); same hash tag.
  Returns: one code per work id: canceled | cancel_requested | already_requested (running, and
           asked before) | finished | unknown.
  Complexity: O(log N) per work id.
]]
local stream_key = KEYS[1]
local delayed_key = KEYS[2]
local callbacks_key = KEYS[3]
local wake_key = KEYS[4]
local job_prefix = ARGV[1]
local channel = ARGV[2]
local stats_prefix = ARGV[3]
local bucket_ms = tonumber(ARGV[4])
local stats_ttl_ms = tonumber(ARGV[5])
local FIRST = 6

--- @include "clock"
--- @include "wake"
--- @include "finish"
--- @include "stats"

local now = now_ms()
local codes = {}
local any_callback = false

for i = FIRST, #ARGV do
  local work_id = ARGV[i]
  local job = job_prefix .. work_id
  local f = redis.pcall('HMGET', job, 'state', 'sid')
  local state = not f.err and f[1]
  if state == 'pending' or state == 'scheduled' then
    if state == 'pending' and f[2] then
      redis.call('XDEL', stream_key, f[2])
    end
    redis.call('ZREM', delayed_key, work_id)
    finish(job, work_id, 'canceled', 'error', 'canceled', now, callbacks_key, channel)
    any_callback = any_callback or redis.call('HEXISTS', job, 'on_complete') == 1
    codes[#codes + 1] = 'canceled'
  elseif state == 'running' then
    -- HSETNX: a second request is told apart, so cancel_all never counts a job twice.
    if redis.call('HSETNX', job, 'cancel', '1') == 1 then
      codes[#codes + 1] = 'cancel_requested'
    else
      codes[#codes + 1] = 'already_requested'
    end
  elseif state == 'finished' then
    codes[#codes + 1] = 'finished'
  else
    -- No status hash (or not a hash): drop any stray delayed entry so it cannot linger.
    redis.call('ZREM', delayed_key, work_id)
    codes[#codes + 1] = 'unknown'
  end
end

record_stats(stats_prefix, bucket_ms, stats_ttl_ms, now, 0, 0, 0, finished_count)
if any_callback then
  wake(wake_key)
end
return codes
