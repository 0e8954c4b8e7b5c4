-- wake(key): leave one token in the pool's wake list, where idle workers BLPOP. At most one
-- token is ever kept: a woken worker that leaves work behind wakes the next one itself.
local function wake(key)
  if redis.call('LLEN', key) == 0 then
    redis.call('LPUSH', key, '1')
  end
end
