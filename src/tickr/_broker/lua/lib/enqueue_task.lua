-- enqueue_task(pending_key, scheduled_key, task_prefix, unique_prefix, seq, item): add one
-- task; item = {id, msg, priority, due (ms; 0 = runnable now), unique digest ('' = none),
-- unique ttl (ms), max retries}.  `seq` is the FIFO number it gets if it becomes pending.
-- Returns the outcome (1 pending, 2 scheduled, 0 the id is taken by a different task, or
-- the id of the live equal task holding the unique lock) and whether a task was written.
-- A task whose id exists with the very same msg counts as enqueued (a re-sent call).
local function enqueue_task(pending_key, scheduled_key, task_prefix, unique_prefix, seq, item)
  local id, msg, priority, due, digest, unique_ttl, max_retry = unpack(item)
  local key = task_prefix .. id
  if redis.call('EXISTS', key) == 1 then
    if redis.call('HGET', key, 'msg') == msg then
      return (due > 0) and 2 or 1, false
    end
    return 0, false
  end
  if digest ~= '' and not redis.call('SET', unique_prefix .. digest, id, 'NX', 'PX', unique_ttl) then
    return redis.call('GET', unique_prefix .. digest) or '', false
  end
  local outcome
  if due > 0 then
    redis.call('HSET', key, 'msg', msg, 'state', 'scheduled', 'pri', priority, 'mr', max_retry,
      'due', due)
    redis.call('ZADD', scheduled_key, due, id)
    outcome = 2
  else
    local member = pending_member(seq, id)
    redis.call('HSET', key, 'msg', msg, 'state', 'pending', 'pri', priority, 'mr', max_retry,
      'pm', member)
    redis.call('ZADD', pending_key, -priority, member)
    outcome = 1
  end
  if digest ~= '' then
    redis.call('HSET', key, 'uk', digest)
  end
  return outcome, true
end
