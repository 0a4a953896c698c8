-- trim_archive(archived_key, task_prefix, max_size, max_age_ms, now): keep the archive
-- within its size and age caps, deleting the oldest tasks (a bounded amount per call).
local function trim_archive(archived_key, task_prefix, max_size, max_age_ms, now)
  local excess = redis.call('ZCARD', archived_key) - max_size
  if excess > 0 then
    if excess > 1000 then
      excess = 1000
    end
    local ids = redis.call('ZRANGE', archived_key, 0, excess - 1)
    for _, id in ipairs(ids) do
      redis.call('DEL', task_prefix .. id)
    end
    redis.call('ZREMRANGEBYRANK', archived_key, 0, excess - 1)
  end
  local old = redis.call('ZRANGEBYSCORE', archived_key, '-inf', now - max_age_ms, 'LIMIT', 0, 100)
  for _, id in ipairs(old) do
    redis.call('DEL', task_prefix .. id)
    redis.call('ZREM', archived_key, id)
  end
end
