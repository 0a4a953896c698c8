-- manage_task(q, op, id): what an operator does to one task ('delete', 'run', 'archive').
-- q holds the queue's keys and arguments: q.prefix (task keys), q.unique (unique keys),
-- q.pending, q.scheduled, q.retry, q.archived, q.completed, q.seq, q.done (channel),
-- q.now (ms); manage_task sets q.woken when a task became pending.
-- Returns 1 done, 0 not possible in the task's state, -1 no such task; and the state.
--   delete:  any state but active (cancel an active task instead)
--   run:     scheduled, retry, archived -> pending (at the back of its priority)
--   archive: pending, scheduled, retry -> archived
-- A task whose record is damaged (see lib/task_record.lua) cannot run: any op sets it
-- aside in the archive first (`known_member`, its pending member when the caller knows
-- it, leaves the pending set too), and delete then deletes it; the state returned is 'corrupt'.
local function manage_corrupt(q, op, id, key, kind, problem, known_member)
  for _, set in ipairs({q.scheduled, q.retry, q.completed}) do
    redis.call('ZREM', set, id)
  end
  if known_member then
    redis.call('ZREM', q.pending, known_member)
  end
  archive_corrupt(key, kind, q.archived, id, problem, q.now)
  if op == 'delete' then
    redis.call('DEL', key)
    redis.call('ZREM', q.archived, id)
    return 1, 'corrupt'
  end
  return op == 'archive' and 1 or 0, 'corrupt'
end

local function manage_task(q, op, id, known_member)
  local key = q.prefix .. id
  local problem, kind = record_problem(key)
  if problem then
    return manage_corrupt(q, op, id, key, kind, problem, known_member)
  end
  local task = redis.call('HMGET', key, 'state', 'pm', 'pri', 'uk', 'w', 'err')
  local state = task[1]
  if not state then
    return -1, ''
  end
  if state == 'active' then
    return 0, state
  end
  if op == 'run' and (state == 'pending' or state == 'completed') then
    return 0, state
  end
  if op == 'archive' and (state == 'archived' or state == 'completed') then
    return 0, state
  end
  if state == 'pending' then
    redis.call('ZREM', q.pending, task[2] or '')
  elseif state == 'scheduled' then
    redis.call('ZREM', q.scheduled, id)
  elseif state == 'retry' then
    redis.call('ZREM', q.retry, id)
  elseif state == 'archived' then
    redis.call('ZREM', q.archived, id)
  elseif state == 'completed' then
    redis.call('ZREM', q.completed, id)
  end
  if op == 'run' then
    local member = pending_member(redis.call('INCR', q.seq), id)
    redis.call('HSET', key, 'state', 'pending', 'pm', member)
    redis.call('HDEL', key, 'due')
    redis.call('ZADD', q.pending, -(tonumber(task[3]) or 0), member)
    q.woken = true
    return 1, state
  end
  if op == 'archive' then
    redis.call('HSET', key, 'state', 'archived', 'failed_at', q.now, 'err',
      task[6] or 'archived by an operator')
    redis.call('HDEL', key, 'due', 'cancel')
    redis.call('ZADD', q.archived, q.now, id)
  else
    redis.call('DEL', key)
  end
  release_unique(q.unique, task[4], id)
  if task[5] then
    redis.call('PUBLISH', q.done, id)
  end
  return 1, state
end
