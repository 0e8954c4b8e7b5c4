-- take_all(key): remove and return every item of a list (a worker's inbox), oldest first.
local function take_all(key)
  local items = redis.call('LRANGE', key, 0, -1)
  if #items > 0 then
    redis.call('DEL', key)
  end
  return items
end
