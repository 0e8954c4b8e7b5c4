--[[
  update_config: set a pool's cap for every producer and worker at once. 0 pauses the pool:
  nothing new starts, running work ends. Raising the cap wakes an idle worker when work waits.

  KEYS[1] config     (hash)    max_parallelism
  KEYS[2] stream     (stream)  ready jobs
  KEYS[3] wake       (list)    idle workers' wake token
  ARGV[1] max_parallelism      new cap, integer >= 0
  ARGV[2] default_cap          the cap a pool without config has
  Returns: the previous cap (integer).
  Complexity: O(1).
]]
local config_key = KEYS[1]
local stream_key = KEYS[2]
local wake_key = KEYS[3]
local cap = tonumber(ARGV[1])
local default_cap = tonumber(ARGV[2])

--- @include "wake"

local previous = tonumber(redis.call('HGET', config_key, 'max_parallelism')) or default_cap
redis.call('HSET', config_key, 'max_parallelism', cap)
if cap > previous and redis.call('XLEN', stream_key) > 0 then
  wake(wake_key)
end
return previous
