--[[
  stats: one consistent snapshot of a pool's queue sizes and its recent outcome counters.

  KEYS[1] stream     (stream)  ready jobs
  KEYS[2] running    (zset)    running jobs
  KEYS[3] delayed    (zset)    delayed and backing-off jobs
  KEYS[4] config     (hash)    max_parallelism
  ARGV[1] stats_prefix         outcome counters key = stats_prefix .. bucket number
  ARGV[2] window_ms            how far back "recent" reaches
  ARGV[3] bucket_ms            width of one stats bucket
  ARGV[4] default_cap          the cap a pool without config has
  Derived keys: stats_prefix .. bucket (hash, same hash tag), one per bucket in the window.
  Returns: {pending, running, scheduled, oldest_pending_ms, executions, errors, failures, cap,
            finished}
  Complexity: O(window_ms / bucket_ms).
]]
local stream_key = KEYS[1]
local running_key = KEYS[2]
local delayed_key = KEYS[3]
local config_key = KEYS[4]
local stats_prefix = ARGV[1]
local window_ms = tonumber(ARGV[2])
local bucket_ms = tonumber(ARGV[3])
local default_cap = tonumber(ARGV[4])

--- @include "clock"

local now = now_ms()
local pending = redis.call('XLEN', stream_key)
local oldest_ms = 0
if pending > 0 then
  local first = redis.call('XRANGE', stream_key, '-', '+', 'COUNT', 1)
  if #first > 0 then
    local added_ms = tonumber(string.match(first[1][1], '^(%d+)-'))
    oldest_ms = math.max(0, now - added_ms)
  end
end

local executions, errors, failures, finished = 0, 0, 0, 0
local last = math.floor(now / bucket_ms)
for bucket = math.floor((now - window_ms) / bucket_ms) + 1, last do
  local c = redis.call('HMGET', stats_prefix .. bucket, 'executions', 'errors', 'failures',
                       'finished')
  executions = executions + (tonumber(c[1]) or 0)
  errors = errors + (tonumber(c[2]) or 0)
  failures = failures + (tonumber(c[3]) or 0)
  finished = finished + (tonumber(c[4]) or 0)
end

local cap = tonumber(redis.call('HGET', config_key, 'max_parallelism')) or default_cap
return {pending, redis.call('ZCARD', running_key), redis.call('ZCARD', delayed_key), oldest_ms,
        executions, errors, failures, cap, finished}
