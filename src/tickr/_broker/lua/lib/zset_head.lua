-- zset_head(key): the lowest score of a sorted set, or nil when it is empty.
local function zset_head(key)
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #head == 0 then
    return nil
  end
  return tonumber(head[2])
end
