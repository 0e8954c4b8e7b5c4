--[[
  claim: admission in one step. Moves due delayed jobs to the stream, leases due on_complete
  callbacks (they take no slot, and go first so a deep backlog cannot starve them), then takes
  as many ready jobs as both the pool's free slots and the worker's remaining capacity allow,
  marking each running under a lease. The cap check and the take are one atomic step, so the
  pool's cap holds across every worker. With capacity 0 it only promotes due jobs.

  KEYS[1] stream     (stream)  ready jobs, read through consumer group ARGV[2]
  KEYS[2] delayed    (zset)    work id -> due time (ms)
  KEYS[3] running    (zset)    work id -> lease deadline (ms); ZCARD = slots in use
  KEYS[4] config     (hash)    max_parallelism
  KEYS[5] wake       (list)    idle workers' wake token
  KEYS[6] callbacks  (zset)    work id -> due time (ms) of its callback
  ARGV[1] job_prefix           status hash key = job_prefix .. work id (same hash tag)
  ARGV[2] group                consumer group name
  ARGV[3] worker               id of the claiming worker, recorded as the job's owner
  ARGV[4] capacity             how many jobs plus callbacks the worker can start now
  ARGV[5] lease_ms             lease length
  ARGV[6] promote_limit        most delayed jobs moved per call
  ARGV[7] default_cap          cap used when the pool has no config yet
  Derived keys: job_prefix .. work_id (hash, same hash tag).
  Returns: {now_ms, next_delayed_ms, next_callback_ms, jobs, callbacks, skipped} where
    jobs      = {{work_id, fn, kind, args, attempt}, ...}
    callbacks = {{work_id, on_complete, context, result, return_value, error, attempt}, ...}
    skipped   = {{stream_id, work_id or ''}, ...}: entries with no pending job behind them
                (canceled, deleted, or not written by workpool); they are removed.
    next_delayed_ms / next_callback_ms: the earliest score left in the delayed / callbacks
                set ('' when empty); a callback's score is its due time or lease deadline.
  Complexity: O(log N) per job moved, taken or skipped; never proportional to the backlog.
]]
local stream_key = KEYS[1]
local delayed_key = KEYS[2]
local running_key = KEYS[3]
local config_key = KEYS[4]
local wake_key = KEYS[5]
local callbacks_key = KEYS[6]

local job_prefix = ARGV[1]
local group = ARGV[2]
local worker = ARGV[3]
local capacity = tonumber(ARGV[4])
local lease_ms = tonumber(ARGV[5])
local promote_limit = tonumber(ARGV[6])
local default_cap = tonumber(ARGV[7])
-- With NOACK there is no pending-entries list, so one shared consumer name suffices; per-worker
-- names would pile up in the group forever. The job hash records the real owner.
local CONSUMER = 'workers'

--- @include "clock"
--- @include "wake"

local now = now_ms()

-- 1. Promote due delayed jobs, oldest due first.
local due_ids = redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, promote_limit)
for _, work_id in ipairs(due_ids) do
  local job = job_prefix .. work_id
  if redis.call('HGET', job, 'state') == 'scheduled' then
    local sid = redis.call('XADD', stream_key, '*', 'id', work_id)
    redis.call('HSET', job, 'state', 'pending', 'sid', sid)
    redis.call('HDEL', job, 'next_run_at')
  end
  redis.call('ZREM', delayed_key, work_id)
end

-- 2. Lease due callbacks; they take no slot.
local callbacks = {}
if capacity > 0 then
  local ids = redis.call('ZRANGEBYSCORE', callbacks_key, '-inf', now, 'LIMIT', 0, capacity)
  for _, work_id in ipairs(ids) do
    local job = job_prefix .. work_id
    local f = redis.call('HMGET', job, 'on_complete', 'context', 'result', 'return_value', 'error')
    if f[1] then
      local attempt = redis.call('HINCRBY', job, 'callback_attempts', 1)
      redis.call('HSET', job, 'callback_worker', worker)
      redis.call('ZADD', callbacks_key, now + lease_ms, work_id)
      callbacks[#callbacks + 1] = {work_id, f[1], f[2] or '', f[3] or '', f[4] or '', f[5] or '',
                                   attempt}
    else
      -- The status hash is gone (deleted behind our back): nothing left to call back with.
      redis.call('ZREM', callbacks_key, work_id)
    end
  end
end

-- 3. Take ready jobs up to min(free slots, capacity left).
local function read_entries(count)
  local reply = redis.pcall('XREADGROUP', 'GROUP', group, CONSUMER, 'COUNT', count, 'NOACK',
                            'STREAMS', stream_key, '>')
  if type(reply) == 'table' and reply.err then
    if not string.find(reply.err, 'NOGROUP', 1, true) then
      return redis.error_reply(reply.err)
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

local cap = tonumber(redis.call('HGET', config_key, 'max_parallelism')) or default_cap
local free_slots = cap - redis.call('ZCARD', running_key)
local to_take = math.min(free_slots, capacity - #callbacks)
local jobs = {}
local skipped = {}
while to_take > 0 do
  local entries = read_entries(to_take)
  if entries.err then
    return entries
  end
  if #entries == 0 then
    break
  end
  local requested = to_take
  local stream_ids = {}
  for i, entry in ipairs(entries) do
    stream_ids[i] = entry[1]
    local work_id = entry_work_id(entry[2])
    local job = work_id and (job_prefix .. work_id)
    if job and redis.call('HGET', job, 'state') == 'pending' then
      local attempt = redis.call('HINCRBY', job, 'attempts', 1)
      redis.call('HSET', job, 'state', 'running', 'started_at', now, 'worker', worker)
      redis.call('HDEL', job, 'sid')
      redis.call('ZADD', running_key, now + lease_ms, work_id)
      local f = redis.call('HMGET', job, 'fn', 'kind', 'args')
      jobs[#jobs + 1] = {work_id, f[1], f[2], f[3], attempt}
      to_take = to_take - 1
    else
      skipped[#skipped + 1] = {entry[1], work_id or ''}
    end
  end
  redis.call('XDEL', stream_key, unpack(stream_ids))
  if #entries < requested then
    break
  end
end

-- 4. Leave a wake token if work remains that another worker could take now.
local more_jobs = free_slots - #jobs > 0 and redis.call('XLEN', stream_key) > 0
local first_cb = redis.call('ZRANGE', callbacks_key, 0, 0, 'WITHSCORES')
local more_callbacks = #first_cb > 0 and tonumber(first_cb[2]) <= now
if more_jobs or more_callbacks then
  wake(wake_key)
end

local function first_score(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first == 0 then
    return ''
  end
  return string.format('%d', tonumber(first[2]))
end
return {string.format('%d', now), first_score(delayed_key), first_score(callbacks_key), jobs,
        callbacks, skipped}
