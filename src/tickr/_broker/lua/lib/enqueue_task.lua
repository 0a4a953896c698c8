-- enqueue_task(st, scheduled_key, task_prefix, unique_prefix, item, handoff):
-- add one task; item = {id, msg, priority, due (ms; 0 = runnable now), unique digest
-- ('' = none), unique ttl (ms), max retries, token, lane ('' = none)}.  The token identifies the call that
-- chose the id: '' when the id is a fresh random one, so that it is the call's own.
-- `st` is the queue's pending store (lib/pending_store.lua), where a task runnable now
-- waits.
-- `handoff` (or nil) = {waiters, active, inbox_prefix, now, inbox_ttl (ms),
-- handed_leases (lease lengths a hand-off is recorded for)}, given only while the queue
-- has nothing pending and is not paused: a task runnable now then goes straight to an
-- idle server registered in `waiters`, active under its lease and pushed on its inbox
-- list, which the server reads with BLPOP; one round trip fewer than publishing a
-- wake-up and letting the server dequeue.  `handoff.none_left` is set once no waiter is.
-- Returns the outcome (1 pending, 2 scheduled, 0 the id is taken by a different task, or
-- the id of the live equal task holding the unique lock), whether a task was written, and
-- whether it was handed to a server.
-- A task whose id exists counts as enqueued when it was written by this very call, sent
-- again after its reply was lost (same token, or a fresh id); otherwise the id is taken.
-- Whether a task may go straight to an idle server: not while the queue is paused, nor
-- while it has a rate or concurrency limit, which dequeue.lua alone applies.  The limits
-- key is the paused key's sibling (QueueKeys.limits).
local function handoff_open(paused_key)
  local limits_key = string.sub(paused_key, 1, -7) .. 'limits'
  return redis.call('EXISTS', paused_key, limits_key) == 0
end

local function pending_token(st, id)
  local raw = store_get(st, id)
  if not raw then
    return false
  end
  local record = record_read(raw)
  return (record and record_field(record, 'tok')) or ''
end

local function enqueue_task(st, scheduled_key, task_prefix, unique_prefix, item, handoff)
  local id, msg, priority, due, digest, unique_ttl, max_retry, token, lane = unpack(item)
  local key = task_prefix .. id
  local existing = false  -- the token of the task holding the id ('' when none)
  if redis.call('EXISTS', key) == 1 then
    existing = redis.call('HGET', key, 'tok') or ''
  elseif due == 0 and digest == '' and not (handoff and not handoff.none_left) then
    -- The common case: one write checks that the id is free and makes the task pending.
    local record = {msg, priority, max_retry}
    if token ~= '' then
      record[4], record[5] = 'tok', token
    end
    if lane and lane ~= '' then
      record[#record + 1] = 'ln'
      record[#record + 1] = lane
    end
    if pending_add(st, id, record) then
      return 1, true, false
    end
    existing = pending_token(st, id)
  else
    existing = pending_token(st, id)
  end
  if existing ~= false then
    if token == '' or existing == token then
      return (due > 0) and 2 or 1, false, false
    end
    return 0, false, false
  end
  if digest ~= '' and not redis.call('SET', unique_prefix .. digest, id, 'NX', 'PX', unique_ttl) then
    return redis.call('GET', unique_prefix .. digest) or '', false, false
  end
  local extra = {}
  if digest ~= '' then
    extra[#extra + 1] = 'uk'
    extra[#extra + 1] = digest
  end
  if token ~= '' then
    extra[#extra + 1] = 'tok'
    extra[#extra + 1] = token
  end
  if lane and lane ~= '' then
    extra[#extra + 1] = 'ln'
    extra[#extra + 1] = lane
  end
  if due > 0 then
    redis.call('HSET', key, 'msg', msg, 'state', 'scheduled', 'pri', priority, 'mr', max_retry,
      'due', due, unpack(extra))
    redis.call('ZADD', scheduled_key, due, id)
    return 2, true, false
  end
  if handoff and not handoff.none_left then
    redis.call('ZREMRANGEBYSCORE', handoff.waiters, '-inf', handoff.now)
    local waiter = redis.call('ZRANGE', handoff.waiters, 0, 0)[1]
    if not waiter then
      handoff.none_left = true
    else
      redis.call('ZREM', handoff.waiters, waiter)
      local space = string.find(waiter, ' ', 1, true)
      local lease_ms = tonumber(string.sub(waiter, 1, space - 1))
      local owner = string.sub(waiter, space + 1)
      redis.call('HSET', key, 'msg', msg, 'state', 'active', 'pri', priority, 'mr', max_retry,
        'owner', owner, unpack(extra))
      redis.call('ZADD', handoff.active, handoff.now + lease_ms, id)
      local inbox = handoff.inbox_prefix .. owner
      redis.call('RPUSH', inbox, id .. ' ' .. msg)
      redis.call('PEXPIRE', inbox, handoff.inbox_ttl)
      -- Recorded for renew_handed.lua (the key as QueueKeys.handed builds it).
      local handed = inbox .. ':handed'
      redis.call('ZREMRANGEBYSCORE', handed, '-inf',
        '(' .. (handoff.now - handoff.handed_leases * lease_ms))
      redis.call('ZADD', handed, handoff.now, id)
      redis.call('PEXPIRE', handed, handoff.inbox_ttl)
      return 1, true, true
    end
  end
  local record = {msg, priority, max_retry}
  for _, value in ipairs(extra) do
    record[#record + 1] = value
  end
  pending_push(st, id, record, false)
  return 1, true, false
end
