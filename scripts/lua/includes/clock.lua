-- now_ms(): the Redis server clock in integer milliseconds. Every due time and lease deadline
-- comes from here, so clock skew between hosts can never reorder jobs or steal leases.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
