-- enqueue_task(pending_key, scheduled_key, task_prefix, unique_prefix, seq, item, handoff):
-- add one task; item = {id, msg, priority, due (ms; 0 = runnable now), unique digest
-- ('' = none), unique ttl (ms), max retries, token}.  The token identifies the call that
-- chose the id: '' when the id is a fresh random one, so that it is the call's own.
-- `seq` is the FIFO number the task gets if it becomes pending.
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
local function enqueue_task(pending_key, scheduled_key, task_prefix, unique_prefix, seq, item,
    handoff)
  local id, msg, priority, due, digest, unique_ttl, max_retry, token = unpack(item)
  local key = task_prefix .. id
  if redis.call('EXISTS', key) == 1 then
    if token == '' or redis.call('HGET', key, 'tok') == token then
      return (due > 0) and 2 or 1, false, false
    end
    return 0, false, false
  end
  if digest ~= '' and not redis.call('SET', unique_prefix .. digest, id, 'NX', 'PX', unique_ttl) then
    return redis.call('GET', unique_prefix .. digest) or '', false, false
  end
  if digest ~= '' then
    redis.call('HSET', key, 'uk', digest)
  end
  if token ~= '' then
    redis.call('HSET', key, 'tok', token)
  end
  if due > 0 then
    redis.call('HSET', key, 'msg', msg, 'state', 'scheduled', 'pri', priority, 'mr', max_retry,
      'due', due)
    redis.call('ZADD', scheduled_key, due, id)
    return 2, true, false
  end
  local member = pending_member(seq, id)
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
        'pm', member, 'owner', owner)
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
  redis.call('HSET', key, 'msg', msg, 'state', 'pending', 'pri', priority, 'mr', max_retry,
    'pm', member)
  redis.call('ZADD', pending_key, -priority, member)
  return 1, true, false
end
