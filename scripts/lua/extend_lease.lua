--[[
  extend_lease: a worker's heartbeat. Renews, in one call, the leases of everything it is
  running in the pool: jobs, callbacks, and slots held by timed-out threads that have not
  returned yet. A lease that is no longer this worker's (it expired and was taken over) is not
  renewed and is reported lost.

  KEYS[1] running    (zset)    work id (or slot name) -> lease deadline (ms)
  KEYS[2] callbacks  (zset)    work id -> lease deadline (ms) of a running callback
  ARGV[1] job_prefix           status hash key = job_prefix .. work id (same hash tag)
  ARGV[2] worker               id of the renewing worker
  ARGV[3] lease_ms             new lease length from now
  ARGV[4..] per item, 3 values: kind (job | callback | slot), member, attempt
  Derived keys: job_prefix .. work_id (hash, same hash tag).
  Returns: the items not renewed, as {kind, member} pairs (empty when all were).
  Complexity: O(log N) per item.
]]
local running_key = KEYS[1]
local callbacks_key = KEYS[2]
local job_prefix = ARGV[1]
local worker = ARGV[2]
local lease_ms = tonumber(ARGV[3])
local FIRST = 4

--- @include "clock"

local deadline = now_ms() + lease_ms

local function owns(member, attempt, fields, want_state)
  local f = redis.pcall('HMGET', job_prefix .. member, unpack(fields))
  return not f.err and f[1] == want_state and f[2] == worker and tonumber(f[3]) == attempt
end

local function renew(key, member)
  if redis.call('ZSCORE', key, member) then
    redis.call('ZADD', key, 'XX', deadline, member)
    return true
  end
  return false
end

local lost = {}
for i = FIRST, #ARGV, 3 do
  local kind, member, attempt = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local renewed = false
  if kind == 'job' then
    renewed = owns(member, attempt, {'state', 'worker', 'attempts'}, 'running')
              and renew(running_key, member)
  elseif kind == 'callback' then
    renewed = owns(member, attempt, {'callback', 'callback_worker', 'callback_attempts'},
                   'pending') and renew(callbacks_key, member)
  elseif kind == 'slot' then
    renewed = renew(running_key, member)
  end
  if not renewed then
    lost[#lost + 1] = {kind, member}
  end
end
return lost
