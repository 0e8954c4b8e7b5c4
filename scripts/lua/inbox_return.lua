--[[
  inbox_return: a stopping worker's waiter puts back a job it popped from its inbox but will not
  run (the dispatcher may no longer be reading). Only while the job is still leased to this very
  attempt of this worker: then it is unstarted, and stop's withdrawal or the reclaim of its lease
  finds it back at the head of the inbox. If the lease was already taken back, or the job ended,
  nothing is written (an item put back then would be a stale copy of a job that moved on).

  KEYS[1] inbox      (list)    this worker's inbox
  KEYS[2] job        (hash)    the job's status hash
  ARGV[1] item                 the inbox item, exactly as popped
  ARGV[2] worker               this worker's id
  ARGV[3] attempt              the attempt the item carries
  Returns: 1 if put back, 0 if not.
  Complexity: O(1).
]]
--- @include "inbox"

local f = redis.pcall('HMGET', KEYS[2], 'state', 'worker', 'attempts')
if f.err or f[1] ~= 'running' or f[2] ~= ARGV[2] or f[3] ~= ARGV[3] then
  return 0
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], INBOX_TTL_MS)
return 1
