--[[
  claim: admission in one step. First records the outcomes the worker brings (as complete.lua
  does: one round trip both ends finished work and starts new work). Then takes back jobs whose
  lease expired (freeing their slots), moves due delayed jobs to the stream, leases due
  on_complete callbacks (they take no slot, and go first so a deep backlog cannot starve them),
  then takes as many ready jobs as both the pool's free slots and the worker's remaining
  capacity allow, marking each running under a lease. The cap check and the take are one atomic
  step, so the cap holds across every worker. With capacity 0 it only records, reclaims and
  promotes.

  KEYS[1] stream     (stream)  ready jobs, read through consumer group ARGV[2]
  KEYS[2] delayed    (zset)    work id -> due time (ms)
  KEYS[3] running    (zset)    work id -> lease deadline (ms); ZCARD = slots in use
  KEYS[4] config     (hash)    max_parallelism
  KEYS[5] wake       (list)    idle workers' wake token
  KEYS[6] callbacks  (zset)    work id -> due time, or lease deadline while running (ms)
  KEYS[7] dead       (stream)  stream entries moved aside: no pending job behind them
  KEYS[8] idle       (zset)    idle workers' offers to take one job directly (enqueue.lua)
  KEYS[9] inbox      (list)    this worker's inbox: jobs enqueues handed it under its offers
  ARGV[1] job_prefix           status hash key = job_prefix .. work id (same hash tag)
  ARGV[2] group                consumer group name
  ARGV[3] worker               id of the claiming worker, recorded as the owner
  ARGV[4] capacity             how many jobs plus callbacks the worker can start now
  ARGV[5] lease_ms             lease length
  ARGV[6] promote_limit        most delayed jobs moved, and most expired leases reclaimed
  ARGV[7] default_cap          cap used when the pool has no config yet
  ARGV[8] channel              pub/sub channel told the work id of every finished job
  ARGV[9] stats_prefix         outcome counters key = stats_prefix .. (now // bucket_ms)
  ARGV[10] bucket_ms           width of one stats bucket
  ARGV[11] stats_ttl_ms        how long a stats bucket is kept
  ARGV[12] jitter              backoff jitter factor for reclaimed actions, in [0.5, 1.5)
  ARGV[13] max_query_reruns    times a query is re-run after lost workers before it fails
  ARGV[14] callback_max_attempts  a callback whose lease expired this often is failed
  ARGV[15] dead_maxlen         approximate length the dead stream is trimmed to
  ARGV[16] offer               a new offer to make if capacity is left, as
                               "<lease ms>/<seq>/<worker id>" (seq: new per offer); '' = none
  ARGV[17] offer_ttl_ms        how long a new offer stands (the worker renews it sooner)
  ARGV[18] inbox_prefix        a worker's inbox = inbox_prefix .. worker id (for reclaims)
  ARGV[19] n_prev              then n_prev offers this worker made that may still stand
  ARGV[..] n_done              then n_done used marks this worker has learned of (deleted)
  ARGV[..] outcomes to record first, 5 values each, exactly as complete.lua's ARGV[8..]
  Offers (see enqueue.lua): each offer of the worker's keeps one unit of its capacity back.
  A previous offer is settled first: still standing or gone (expired), it is removed and its
  unit joins `capacity`; used by an enqueue (score < 0), its job is on its way to the inbox, the
  unit stays spent, and the used mark stays until the worker names it in `done` (so a claim
  sent again after a lost reply reads the same). After taking work a new offer is made if
  capacity is left, and expired offers and used marks older than a day are cleared.
  After offer activity (prev or done given) the inbox is emptied into the reply too: a handed
  job reaches its worker by whichever comes first, its waiter's BLPOP or its next claim.
  Expired leases are left alone until the server has been up for lease_ms (after a restart
  every deadline has passed while the workers holding them were merely cut off).
  Derived keys: job_prefix .. work_id (hash), stats_prefix .. bucket (hash); same hash tag.
  Returns: {now_ms, next_delayed_ms, next_callback_ms, next_lease_ms, jobs, callbacks, skipped,
            reclaimed, codes, offers, handed} where
    jobs      = {{work_id, fn, kind, args, attempt, timeout_ms or '', queued_ms}, ...}
                queued_ms: how long it waited ready in the stream
    callbacks = {{work_id, on_complete, context, result, return_value, error, attempt}, ...}
    skipped   = {{stream_id, work_id or ''}, ...}: entries with no pending job behind them
                (canceled, deleted, or not written by workpool), moved to the dead stream
    reclaimed = {{work_id, code}, ...}: expired leases taken back (codes as reclaim())
    codes     = one code per outcome, as complete.lua returns them
    offers    = {made, used}: made = 1 if the new offer stands; used = the previous offers
                an enqueue used
    handed    = the inbox's items (jobs already leased to this worker, as enqueue.lua packs them)
    next_*_ms: the earliest score left in the delayed / callbacks / running set ('' if empty)
  Complexity: O(log N) per outcome, and per job reclaimed, moved, taken or skipped; never
  O(backlog). Each set is first probed by its head alone, so an idle set costs one call.
]]
local stream_key = KEYS[1]
local delayed_key = KEYS[2]
local running_key = KEYS[3]
local config_key = KEYS[4]
local wake_key = KEYS[5]
local callbacks_key = KEYS[6]
local dead_key = KEYS[7]

local job_prefix = ARGV[1]
local group = ARGV[2]
local worker = ARGV[3]
local capacity = tonumber(ARGV[4])
local lease_ms = tonumber(ARGV[5])
local promote_limit = tonumber(ARGV[6])
local default_cap = tonumber(ARGV[7])
local channel = ARGV[8]
local stats_prefix = ARGV[9]
local bucket_ms = tonumber(ARGV[10])
local stats_ttl_ms = tonumber(ARGV[11])
local jitter = tonumber(ARGV[12])
local max_query_reruns = tonumber(ARGV[13])
local callback_max_attempts = tonumber(ARGV[14])
local dead_maxlen = tonumber(ARGV[15])
local idle_key = KEYS[8]
local inbox_key = KEYS[9]
local offer = ARGV[16]
local offer_ttl_ms = tonumber(ARGV[17])
local inbox_prefix = ARGV[18]
local n_prev = tonumber(ARGV[19])
local FIRST_PREV = 20
local n_done = tonumber(ARGV[FIRST_PREV + n_prev])
local FIRST_DONE = FIRST_PREV + n_prev + 1
local FIRST_OUTCOME = FIRST_DONE + n_done
-- Used marks older than this are cleared even if their worker never came back.
local USED_MARK_KEEP_MS = 86400000
-- With NOACK there is no pending-entries list, so one shared consumer name suffices; per-worker
-- names would pile up in the group forever. The job hash records the real owner.
local CONSUMER = 'workers'

--- @include "clock"
--- @include "wake"
--- @include "finish"
--- @include "backoff"
--- @include "stats"
--- @include "reclaim"
--- @include "complete_one"
--- @include "head"
--- @include "take_all"

local now = now_ms()
local ctx = {job_prefix = job_prefix, running_key = running_key, delayed_key = delayed_key,
             stream_key = stream_key, callbacks_key = callbacks_key, channel = channel, now = now,
             worker = worker, lease_ms = lease_ms, max_query_reruns = max_query_reruns,
             inbox_prefix = inbox_prefix,
             executions = 0, errors = 0, failures = 0, slots_freed = 0}

-- 0. Record the outcomes the worker brought: their slots count as free below.
local codes = {}
for i = FIRST_OUTCOME, #ARGV, 5 do
  codes[#codes + 1] = complete_one(ctx, ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2],
                                   ARGV[i + 3], tonumber(ARGV[i + 4]))
end

-- 0b. Settle the worker's previous offers, forget used marks it has learned of, and take what
-- its inbox holds.
local used = {}
for i = FIRST_PREV, FIRST_PREV + n_prev - 1 do
  local score = tonumber(redis.call('ZSCORE', idle_key, ARGV[i]))
  if score and score < 0 then
    used[#used + 1] = ARGV[i]
  else
    if score then
      redis.call('ZREM', idle_key, ARGV[i])
    end
    capacity = capacity + 1
  end
end
for i = FIRST_DONE, FIRST_OUTCOME - 1 do
  redis.call('ZREM', idle_key, ARGV[i])
end
-- Only after offer activity: otherwise nothing can be there (and a job the waiter somehow
-- missed is found by the reclaim of its lease, unstarted).
local handed = {}
if n_prev > 0 or n_done > 0 then
  handed = take_all(inbox_key)
end

-- 1. Take back expired leases: their slots count as free below. Right after a server restart
-- every lease looks expired, so wait one lease period from start (see server_uptime_ms).
local reclaimed = {}
local next_lease = head_score(running_key)
if next_lease and next_lease <= now then
  local settled = server_uptime_ms() >= lease_ms
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', running_key, '-inf', now, 'LIMIT', 0,
                                     promote_limit)) do
    if settled then
      reclaimed[#reclaimed + 1] = {member, reclaim(ctx, member, jitter)}
    else
      -- Pushed out to the moment the server has been up a lease, so nobody claims in a loop.
      redis.call('ZADD', running_key, 'XX', now + lease_ms - server_uptime_ms(), member)
    end
  end
  next_lease = head_score(running_key)
end
record_stats(stats_prefix, bucket_ms, stats_ttl_ms, now, ctx.executions, ctx.errors,
             ctx.failures, finished_count)

-- 2. Promote due delayed jobs, oldest due first.
local next_delayed = head_score(delayed_key)
if next_delayed and next_delayed <= now then
  for _, work_id in ipairs(redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0,
                                      promote_limit)) do
    local job = job_prefix .. work_id
    local state = redis.pcall('HGET', job, 'state')
    if state == 'scheduled' then
      local sid = redis.call('XADD', stream_key, '*', 'id', work_id)
      redis.call('HSET', job, 'state', 'pending', 'sid', sid)
      redis.call('HDEL', job, 'next_run_at')
    end
    redis.call('ZREM', delayed_key, work_id)
  end
  next_delayed = head_score(delayed_key)
end

-- 3. Lease due callbacks; they take no slot.
local callbacks = {}
local next_callback = head_score(callbacks_key)
if capacity > 0 and next_callback and next_callback <= now then
  local settled = nil
  for _, work_id in ipairs(redis.call('ZRANGEBYSCORE', callbacks_key, '-inf', now, 'LIMIT', 0,
                                      capacity)) do
    local job = job_prefix .. work_id
    local f = redis.pcall('HMGET', job, 'on_complete', 'context', 'result', 'return_value',
                          'error', 'callback_attempts', 'callback', 'callback_worker', 'ttl_ms')
    if f.err or not f[1] or f[7] ~= 'pending' then
      -- Gone, or not a callback awaiting its run: nothing left to call back with.
      redis.call('ZREM', callbacks_key, work_id)
    else
      local lease_expired = f[8] ~= false
      if lease_expired and settled == nil then
        settled = server_uptime_ms() >= lease_ms
      end
      if lease_expired and not settled then
        -- Its worker may be alive and reconnecting after a server restart: leave it be.
        redis.call('ZADD', callbacks_key, 'XX', now + lease_ms - server_uptime_ms(), work_id)
      elseif (tonumber(f[6]) or 0) >= callback_max_attempts then
        -- Its last allowed attempt was lost with its worker: record it failed, do not loop.
        redis.call('ZREM', callbacks_key, work_id)
        redis.call('HSET', job, 'callback', 'failed', 'callback_error', WORKER_LOST,
                   'callback_finished_at', now)
        redis.call('HDEL', job, 'callback_worker')
        local ttl = tonumber(f[9])
        if ttl and ttl >= 0 then
          redis.call('PEXPIRE', job, ttl)
        end
      else
        local attempt = (tonumber(f[6]) or 0) + 1
        redis.call('HSET', job, 'callback_attempts', attempt, 'callback_worker', worker)
        redis.call('ZADD', callbacks_key, now + lease_ms, work_id)
        callbacks[#callbacks + 1] = {work_id, f[1], f[2] or '', f[3] or '', f[4] or '',
                                     f[5] or '', attempt}
      end
    end
  end
  next_callback = head_score(callbacks_key)
end

-- 4. Take ready jobs up to min(free slots, capacity left).
local function read_entries(count)
  local reply = redis.pcall('XREADGROUP', 'GROUP', group, CONSUMER, 'COUNT', count, 'NOACK',
                            'STREAMS', stream_key, '>')
  if type(reply) == 'table' and reply.err then
    if not string.find(reply.err, 'NOGROUP', 1, true) then
      error(reply.err)
    end
    -- First use, or the server lost its data: create the group at the stream's start.
    redis.call('XGROUP', 'CREATE', stream_key, group, '0', 'MKSTREAM')
    reply = redis.call('XREADGROUP', 'GROUP', group, CONSUMER, 'COUNT', count, 'NOACK',
                       'STREAMS', stream_key, '>')
  end
  if not reply then
    return {}
  end
  return reply[1][2]
end

local function entry_work_id(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'id' then
      return fields[i + 1]
    end
  end
  return nil
end

local function move_aside(entry, reason)
  local fields = {'reason', reason, 'stream_id', entry[1]}
  for _, v in ipairs(entry[2]) do
    fields[#fields + 1] = v
  end
  redis.call('XADD', dead_key, 'MAXLEN', '~', dead_maxlen, '*', unpack(fields))
end

local jobs = {}
local skipped = {}
local cap = tonumber(redis.call('HGET', config_key, 'max_parallelism')) or default_cap
local free_slots = cap - redis.call('ZCARD', running_key)
local to_take = math.min(free_slots, capacity - #callbacks)
local deadline = now + lease_ms
local leases = {}
while to_take > 0 do
  local entries = read_entries(to_take)
  if #entries == 0 then
    break
  end
  local requested = to_take
  local stream_ids = {}
  for i, entry in ipairs(entries) do
    stream_ids[i] = entry[1]
    local work_id = entry_work_id(entry[2])
    local job = work_id and (job_prefix .. work_id)
    local f = job and redis.pcall('HMGET', job, 'state', 'attempts', 'fn', 'kind', 'args',
                                  'timeout_ms')
    if f and not f.err and f[1] == 'pending' then
      local attempt = (tonumber(f[2]) or 0) + 1
      redis.call('HSET', job, 'state', 'running', 'attempts', attempt, 'started_at', now,
                 'worker', worker)
      redis.call('HDEL', job, 'sid')
      leases[#leases + 1] = deadline
      leases[#leases + 1] = work_id
      -- The entry id's time is when the job became ready: the wait is from then to now.
      local ready_ms = tonumber(string.match(entry[1], '^(%d+)-')) or now
      jobs[#jobs + 1] = {work_id, f[3], f[4], f[5], attempt, f[6] or '',
                         string.format('%d', math.max(0, now - ready_ms))}
      to_take = to_take - 1
    else
      -- Canceled entries are deleted on cancel; what reaches here is foreign or orphaned.
      local reason = 'no work id'
      if work_id then
        reason = f.err and 'job key of wrong type' or (f[1] and ('job ' .. f[1]))
                 or 'no job hash'
      end
      move_aside(entry, reason)
      skipped[#skipped + 1] = {entry[1], work_id or ''}
    end
  end
  redis.call('XDEL', stream_key, unpack(stream_ids))
  if #entries < requested then
    break
  end
end
if #leases > 0 then
  -- One ZADD for the whole batch; every lease taken here ends at the same deadline.
  redis.call('ZADD', running_key, unpack(leases))
  if next_lease == nil or deadline < next_lease then
    next_lease = deadline
  end
end

-- 5. Offer to take one more job straight from an enqueue, if capacity is left. Expired offers
-- (score in [0, now]) and old used marks (score in (-(now - keep), 0)) form one range.
local offer_made = 0
if offer ~= '' and capacity - #callbacks - #jobs >= 1 then
  local oldest_mark = string.format('(%d', -(now - USED_MARK_KEEP_MS))
  redis.call('ZREMRANGEBYSCORE', idle_key, oldest_mark, string.format('%d', now))
  redis.call('ZADD', idle_key, now + offer_ttl_ms, offer)
  offer_made = 1
end

-- 6. Leave a wake token if work remains that another worker could take now: free slots left
-- with jobs still ready (freed by outcomes or reclaims, or promoted work), or callbacks due.
local more_jobs = free_slots - #jobs > 0 and redis.call('XLEN', stream_key) > 0
if more_jobs or (next_callback and next_callback <= now) then
  wake(wake_key)
end

local function reply_ms(ms)
  if ms == nil then
    return ''
  end
  return string.format('%d', ms)
end
return {string.format('%d', now), reply_ms(next_delayed), reply_ms(next_callback),
        reply_ms(next_lease), jobs, callbacks, skipped, reclaimed, codes, {offer_made, used},
        handed}
