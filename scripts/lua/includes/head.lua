-- head_score(key): the lowest score in a zset, or nil when it is empty. Probing a set by its
-- head first means a set with nothing due costs one call.
local function head_score(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first == 0 then
    return nil
  end
  return tonumber(first[2])
end
