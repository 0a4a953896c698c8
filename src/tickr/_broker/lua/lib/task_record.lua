-- Checks of a task's stored record, made before a script changes anything for the task,
-- so that one damaged record is set aside alone instead of failing its whole batch
-- (Redis does not roll back what a failing script already wrote).

-- record_problem(key): nil when `key` holds a usable task hash, or nothing at all (the
-- caller decides what a missing task means); else why the record is unusable.  Also
-- returns the key's type ('hash', 'none', 'string'...).
local function record_problem(key)
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'none' then
    return nil, kind
  end
  if kind ~= 'hash' then
    return 'corrupt task record: a ' .. kind .. ', not a hash', kind
  end
  local retried = redis.call('HGET', key, 'retried')
  if retried and not (#retried <= 18 and string.match(retried, '^%d+$')) then
    return 'corrupt task record: retried is not a count: ' .. string.sub(retried, 1, 64), kind
  end
  return nil, kind
end

-- archive_corrupt(key, kind, archived_key, id, problem, now): set a damaged task aside in
-- the archive with `problem` as its error.  A record that is not a hash (`kind`) is
-- replaced by one holding only the error, so that the archive still lists and the
-- operator sees why.
local function archive_corrupt(key, kind, archived_key, id, problem, now)
  if kind ~= 'hash' then
    redis.call('DEL', key)
  end
  redis.call('HSET', key, 'state', 'archived', 'err', problem, 'failed_at', now)
  redis.call('HDEL', key, 'owner', 'cancel')
  redis.call('ZADD', archived_key, now, id)
end
