-- now_ms(): the Redis server clock in integer milliseconds. Every due time and lease deadline
-- comes from here, so clock skew between hosts can never reorder jobs or steal leases.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- server_uptime_ms(): how long this Redis server has been up. A server that restarted (or
-- failed over) comes back with every lease deadline passed, though the workers holding them
-- are alive and merely cut off: leases are not reclaimed until one lease period after start,
-- giving workers time to reconnect and renew.
local function server_uptime_ms()
  local info = redis.call('INFO', 'server')
  return (tonumber(string.match(info, 'uptime_in_seconds:(%d+)')) or 0) * 1000
end
