-- manage_task(q, op, id): what an operator does to one task ('delete', 'run', 'archive').
-- q holds the queue's keys and arguments: q.prefix (task keys), q.unique (unique keys),
-- q.st (the pending store, lib/pending_store.lua), q.scheduled, q.retry, q.archived,
-- q.completed, q.done (channel), q.now (ms); manage_task sets q.woken when a task became
-- pending.
-- Returns 1 done, 0 not possible in the task's state, -1 no such task; and the state.
--   delete:  any state but active (cancel an active task instead)
--   run:     scheduled, retry, archived -> pending (at the back of its priority)
--   archive: pending, scheduled, retry -> archived
-- A task whose record is damaged (see lib/task_record.lua) cannot run: any op sets it
-- aside in the archive first, and delete then deletes it; the state returned is 'corrupt'.
local function manage_corrupt(q, op, id, key, kind, problem)
  for _, set in ipairs({q.scheduled, q.retry, q.completed}) do
    redis.call('ZREM', set, id)
  end
  archive_corrupt(key, kind, q.archived, id, problem, q.now)
  if op == 'delete' then
    redis.call('DEL', key)
    redis.call('ZREM', q.archived, id)
    return 1, 'corrupt'
  end
  return op == 'archive' and 1 or 0, 'corrupt'
end

-- manage_pending(q, op, id, record, problem): `op` on a task just taken out of the
-- pending store (record nil when unreadable, with the problem); not for op 'run'.
local function manage_pending(q, op, id, record, problem)
  local key = q.prefix .. id
  if not record then
    redis.call('DEL', key)
    return manage_corrupt(q, op, id, key, 'none', problem)
  end
  if op == 'archive' then
    local fields = record_fields(record)
    redis.call('DEL', key)
    redis.call('HSET', key, unpack(fields))
    redis.call('HSET', key, 'state', 'archived', 'failed_at', q.now, 'err',
      record_field(record, 'err') or 'archived by an operator')
    redis.call('ZADD', q.archived, q.now, id)
  end
  release_unique(q.unique, record_field(record, 'uk'), id)
  if record_field(record, 'w') then
    redis.call('PUBLISH', q.done, id)
  end
  return 1, 'pending'
end

local function manage_task(q, op, id)
  local key = q.prefix .. id
  local problem, kind = record_problem(key)
  if problem then
    return manage_corrupt(q, op, id, key, kind, problem)
  end
  if kind == 'none' then
    local raw, failure = store_get(q.st, id)
    if failure then
      return manage_corrupt(q, op, id, key, kind, failure)
    end
    if not raw then
      return -1, ''
    end
    if op == 'run' then
      return 0, 'pending'
    end
    local record, unreadable = record_read(raw)
    pending_remove(q.st, id, record)
    return manage_pending(q, op, id, record, unreadable)
  end
  local task = redis.call('HMGET', key, 'state', 'uk', 'w', 'err')
  local state = task[1]
  if not state then
    return -1, ''
  end
  if state == 'active' or state == 'pending' then
    return 0, state
  end
  if op == 'run' and state == 'completed' then
    return 0, state
  end
  if op == 'archive' and (state == 'archived' or state == 'completed') then
    return 0, state
  end
  if state == 'scheduled' then
    redis.call('ZREM', q.scheduled, id)
  elseif state == 'retry' then
    redis.call('ZREM', q.retry, id)
  elseif state == 'archived' then
    redis.call('ZREM', q.archived, id)
  elseif state == 'completed' then
    redis.call('ZREM', q.completed, id)
  end
  if op == 'run' then
    local record = record_from_hash(redis.call('HGETALL', key))
    redis.call('DEL', key)
    pending_push(q.st, id, record, false)
    q.woken = true
    return 1, state
  end
  if op == 'archive' then
    redis.call('HSET', key, 'state', 'archived', 'failed_at', q.now, 'err',
      task[4] or 'archived by an operator')
    redis.call('HDEL', key, 'due', 'cancel')
    redis.call('ZADD', q.archived, q.now, id)
  else
    redis.call('DEL', key)
  end
  release_unique(q.unique, task[2], id)
  if task[3] then
    redis.call('PUBLISH', q.done, id)
  end
  return 1, state
end
