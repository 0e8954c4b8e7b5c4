--[[
  enqueue: create one or more jobs of the same function and options, atomically. Each gets its
  status hash and either a stream entry (ready now) or a delayed-set entry (due later); nothing
  is written unless every job can be.

  KEYS[1] stream     (stream)  ready jobs, field `id` = work id
  KEYS[2] delayed    (zset)    work id -> due time (ms)
  KEYS[3] wake       (list)    idle workers' wake token
  KEYS[4] functions  (set)     names registered by the pool's workers
  KEYS[5] config     (hash)    max_parallelism; set to ARGV[13] only if the pool has none
  KEYS[6] running    (zset)    work id -> lease deadline (ms); ZCARD = slots in use
  KEYS[7] idle       (zset)    "<lease ms>/<seq>/<worker id>" -> expiry (ms): idle workers'
                               offers; a used one is marked with score -(time used)
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
  ARGV[15] inbox_prefix        a worker's inbox list = inbox_prefix .. worker id
  ARGV[16..] work_id, args     one pair per job; args is msgpack
  Ready jobs are handed straight to idle workers while the pool has free slots and no older job
  waits in the stream: an idle worker
  offers to take one job (claim.lua puts its offer in the idle set); the job is written running
  under a lease in that worker's name, exactly as claim.lua would, and pushed to its inbox, where
  the worker's blocked BLPOP returns it: it starts without a claim round trip. Each offer takes
  one job and is then marked used (score -now) so its worker's next claim can tell; the packed
  job names the offer. The rest go to the stream as usual. Should the worker be dead, the job
  waits in its inbox until its lease expires, and the reclaim puts it back unstarted (see
  includes/reclaim.lua); the inbox is kept a day for that.
  Derived keys: job_prefix .. work_id (hash), inbox_prefix .. worker (list); same hash tag.
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
local inbox_prefix = ARGV[15]
local running_key = KEYS[6]
local idle_key = KEYS[7]
local FIRST_JOB = 16

--- @include "clock"
--- @include "wake"
--- @include "inbox"

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

-- Config lives in Redis: the first enqueue sets it; a later one never overrides it.
local cap = redis.call('HGET', config_key, 'max_parallelism')
if not cap then
  cap = initial_cap
  redis.call('HSET', config_key, 'max_parallelism', cap)
end

-- The live offer with the latest expiry, as {lease_ms, worker, member}, or nil.
local function live_offer()
  while true do
    local top = redis.call('ZREVRANGE', idle_key, 0, 0, 'WITHSCORES')
    if #top == 0 or tonumber(top[2]) <= now then
      return nil  -- none, or only expired offers and used marks (all score <= now)
    end
    local lease, worker = string.match(top[1], '^(%d+)/%d+/(.+)$')
    if lease then
      return {tonumber(lease), worker, top[1]}
    end
    redis.call('ZREM', idle_key, top[1])  -- not an offer: never hand work to it
  end
end

-- Only while nothing older waits in the stream: a handed job must not overtake the backlog
-- (a serial pool runs in enqueue order).
local free_slots = 0
if due == nil and redis.call('XLEN', stream_key) == 0 then
  free_slots = tonumber(cap) - redis.call('ZCARD', running_key)
end
local handed = 0

-- One HSET per job writes the whole hash (each redis.call costs Lua overhead, per job).
local n = #common
for i = FIRST_JOB, #ARGV, 2 do
  local work_id = ARGV[i]
  local offer = free_slots > 0 and live_offer()
  if not offer then
    free_slots = 0  -- no offer now: the rest of this call need not look again
  end
  if offer then
    -- Written as claim.lua writes a job it takes ('attempts' repeats common's '0': the later
    -- field of one HSET wins).
    local lease_ms, worker = offer[1], offer[2]
    local fields = {'args', ARGV[i + 1], unpack(common, 1, n)}
    for _, v in ipairs({'state', 'running', 'attempts', '1', 'started_at', now,
                        'worker', worker}) do
      fields[#fields + 1] = v
    end
    redis.call('HSET', job_prefix .. work_id, unpack(fields))
    redis.call('ZADD', running_key, now + lease_ms, work_id)
    local inbox = inbox_prefix .. worker
    redis.call('RPUSH', inbox,
               cmsgpack.pack({work_id, fn, kind, ARGV[i + 1], 1, timeout_ms, offer[3]}))
    -- Outlives the lease: the reclaim of a job its dead worker never took looks for it here.
    redis.call('PEXPIRE', inbox, INBOX_TTL_MS)
    redis.call('ZADD', idle_key, -now, offer[3])
    free_slots = free_slots - 1
    handed = handed + 1
  elseif due == nil then
    common[n + 1], common[n + 2] = 'state', 'pending'
    common[n + 3], common[n + 4] = 'sid', redis.call('XADD', stream_key, '*', 'id', work_id)
    redis.call('HSET', job_prefix .. work_id, 'args', ARGV[i + 1], unpack(common))
  else
    redis.call('ZADD', delayed_key, due, work_id)
    common[n + 1], common[n + 2], common[n + 3], common[n + 4] =
      'state', 'scheduled', 'next_run_at', due
    redis.call('HSET', job_prefix .. work_id, 'args', ARGV[i + 1], unpack(common))
  end
end

-- Ready work wakes an idle worker; delayed work wakes one too, so it learns the new due time.
-- Work handed over entirely needs no token: its workers are already woken by their inboxes.
if handed < (#ARGV - FIRST_JOB + 1) / 2 then
  wake(wake_key)
end
return {0, cap}
