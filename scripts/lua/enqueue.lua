--[[
  enqueue: create one or more jobs of the same function and options, atomically. Each gets its
  status hash and either a stream entry (ready now) or a delayed-set entry (due later); nothing
  is written unless every job can be.

  KEYS[1] stream     (stream)  ready jobs, field `id` = work id
  KEYS[2] delayed    (zset)    work id -> due time (ms)
  KEYS[3] wake       (list)    idle workers' wake token
  KEYS[4] functions  (set)     names registered by the pool's workers
  KEYS[5] config     (hash)    max_parallelism; set to ARGV[13] only if the pool has none
  ARGV[1] job_prefix           status hash key = job_prefix .. work id (same hash tag)
  ARGV[2] fn                   registered function name
  ARGV[3] kind                 action | mutation | query
  ARGV[4] schedule             now | after | at
  ARGV[5] schedule_ms          delay (after) or epoch due time (at), in ms
  ARGV[6] ttl_ms               status TTL after finishing; -1 keeps it forever
  ARGV[7] max_attempts         attempts in all, counting the first
  ARGV[8] initial_backoff_ms
  ARGV[9] base                 backoff growth factor (may be fractional)
  ARGV[10] on_complete         callback function name, '' for none
  ARGV[11] context             msgpack context for the callback, '' for none
  ARGV[12] check_functions     '1': reject fn and on_complete unless the pool's workers
                               registered them (checked only once any worker has registered)
  ARGV[13] initial_cap          the cap of a pool that has no config yet
  ARGV[14] timeout_ms          run-time limit of each attempt, '' for none
  ARGV[15..] work_id, args     one pair per job; args is msgpack
  Derived keys: job_prefix .. work_id (hash, same hash tag).
  Returns: {0, cap} ok, with the pool's stored cap; {1, name} a function unknown to the pool's
           workers; {2, work_id} that id exists already or repeats in this call. Only {0, cap}
           wrote anything.
  Complexity: O(jobs).
]]
local stream_key = KEYS[1]
local delayed_key = KEYS[2]
local wake_key = KEYS[3]
local functions_key = KEYS[4]
local config_key = KEYS[5]

local job_prefix = ARGV[1]
local fn = ARGV[2]
local kind = ARGV[3]
local schedule = ARGV[4]
local schedule_ms = tonumber(ARGV[5])
local ttl_ms = ARGV[6]
local max_attempts = tonumber(ARGV[7])
local initial_backoff_ms = ARGV[8]
local base = ARGV[9]
local on_complete = ARGV[10]
local context = ARGV[11]
local check_functions = ARGV[12]
local initial_cap = ARGV[13]
local timeout_ms = ARGV[14]
local FIRST_JOB = 15

--- @include "clock"
--- @include "wake"

if check_functions == '1' and redis.call('EXISTS', functions_key) == 1 then
  for _, name in ipairs({fn, on_complete}) do
    if name ~= '' and redis.call('SISMEMBER', functions_key, name) == 0 then
      return {1, name}
    end
  end
end

-- Check every id before writing any, so a collision leaves nothing half-done.
local seen = {}
for i = FIRST_JOB, #ARGV, 2 do
  if seen[ARGV[i]] or redis.call('EXISTS', job_prefix .. ARGV[i]) == 1 then
    return {2, ARGV[i]}
  end
  seen[ARGV[i]] = true
end

local now = now_ms()
local due = nil
if schedule == 'after' then
  due = now + schedule_ms
elseif schedule == 'at' then
  due = schedule_ms
end
-- A due time already passed goes straight to the stream: it is simply ready.
if due ~= nil and due <= now then
  due = nil
end

local common = {'fn', fn, 'kind', kind, 'attempts', '0', 'enqueued_at', now, 'ttl_ms', ttl_ms}
if max_attempts > 1 then
  for _, v in ipairs({'max_attempts', max_attempts, 'initial_backoff_ms', initial_backoff_ms,
                      'base', base}) do
    common[#common + 1] = v
  end
end
if timeout_ms ~= '' then
  common[#common + 1] = 'timeout_ms'
  common[#common + 1] = timeout_ms
end
if on_complete ~= '' then
  common[#common + 1] = 'on_complete'
  common[#common + 1] = on_complete
  if context ~= '' then
    common[#common + 1] = 'context'
    common[#common + 1] = context
  end
end

-- One HSET per job writes the whole hash (each redis.call costs Lua overhead, per job).
local n = #common
for i = FIRST_JOB, #ARGV, 2 do
  local work_id = ARGV[i]
  if due == nil then
    common[n + 1], common[n + 2] = 'state', 'pending'
    common[n + 3], common[n + 4] = 'sid', redis.call('XADD', stream_key, '*', 'id', work_id)
  else
    redis.call('ZADD', delayed_key, due, work_id)
    common[n + 1], common[n + 2], common[n + 3], common[n + 4] =
      'state', 'scheduled', 'next_run_at', due
  end
  redis.call('HSET', job_prefix .. work_id, 'args', ARGV[i + 1], unpack(common))
end

-- Config lives in Redis: the first enqueue sets it; a later one never overrides it.
local cap = redis.call('HGET', config_key, 'max_parallelism')
if not cap then
  cap = initial_cap
  redis.call('HSET', config_key, 'max_parallelism', cap)
end
-- Ready work wakes an idle worker; delayed work wakes one too, so it learns the new due time.
wake(wake_key)
return {0, cap}
