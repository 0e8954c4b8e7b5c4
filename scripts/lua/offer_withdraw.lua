--[[
  offer_withdraw: a stopping worker takes back its offer to be handed jobs directly (see
  enqueue.lua and claim.lua), and empties its inbox. After this no enqueue can hand it anything.

  KEYS[1] idle       (zset)    idle workers' offers
  KEYS[2] inbox      (list)    this worker's inbox
  ARGV[1] offer                "<lease ms>/<worker id>"
  Returns: the inbox's items (each a job already leased to this worker, as enqueue.lua packed
           it), oldest first, for the worker to run as if it had claimed them.
  Complexity: O(log N + items).
]]
redis.call('ZREM', KEYS[1], ARGV[1])
local items = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
return items
