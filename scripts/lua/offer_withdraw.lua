--[[
  offer_withdraw: a stopping worker takes back its offers to be handed jobs directly (see
  enqueue.lua and claim.lua), and, if it will run them, takes what its inbox holds. After this
  no enqueue can hand it anything.

  KEYS[1] idle       (zset)    idle workers' offers
  KEYS[2] inbox      (list)    this worker's inbox
  ARGV[1] take                 '1': empty the inbox into the reply; '0': leave it, so the
                               reclaim of those jobs' leases finds them unstarted
  ARGV[2..] offers             the worker's offers that may still stand or be marked used
  Returns: with take, the inbox's items (each a job already leased to this worker, as
           enqueue.lua packed it), oldest first, for the worker to run; else {}.
  Complexity: O(offers log N + items).
]]
--- @include "take_all"

for i = 2, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
end
if ARGV[1] ~= '1' then
  return {}
end
return take_all(KEYS[2])
