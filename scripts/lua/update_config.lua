--[[
  update_config: set a pool's cap for every producer and worker at once. 0 pauses the pool:
  nothing new starts, running work ends. Raising the cap wakes an idle worker when work waits.
  Mode `pause` sets the cap to 0 remembering the old one (as resume_parallelism); mode
  `resume` restores it - or, with none remembered, leaves a running pool as it is and gives a
  pool at 0 the cap ARGV[1].

  KEYS[1] config     (hash)    max_parallelism, resume_parallelism
  KEYS[2] stream     (stream)  ready jobs
  KEYS[3] wake       (list)    idle workers' wake token
  ARGV[1] max_parallelism      new cap, integer >= 0 (mode set; fallback of resume)
  ARGV[2] default_cap          the cap a pool without config has
  ARGV[3] mode                 set | pause | resume
  Returns: {previous cap, new cap} (integers).
  Complexity: O(1).
]]
local config_key = KEYS[1]
local stream_key = KEYS[2]
local wake_key = KEYS[3]
local cap = tonumber(ARGV[1])
local default_cap = tonumber(ARGV[2])
local mode = ARGV[3]

--- @include "wake"

local previous = tonumber(redis.call('HGET', config_key, 'max_parallelism')) or default_cap
if mode == 'pause' then
  if previous > 0 then
    redis.call('HSET', config_key, 'resume_parallelism', previous)
  end
  cap = 0
elseif mode == 'resume' then
  local remembered = tonumber(redis.call('HGET', config_key, 'resume_parallelism'))
  if remembered then
    cap = remembered
  elseif previous > 0 then
    cap = previous
  end
  redis.call('HDEL', config_key, 'resume_parallelism')
else
  redis.call('HDEL', config_key, 'resume_parallelism')
end
redis.call('HSET', config_key, 'max_parallelism', cap)
if cap > previous and redis.call('XLEN', stream_key) > 0 then
  wake(wake_key)
end
return {previous, cap}
