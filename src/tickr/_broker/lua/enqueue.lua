-- Enqueue a batch of tasks into one queue.
-- KEYS[1] pending zset    KEYS[2] scheduled zset    KEYS[3] seq counter    KEYS[4] idle flag
-- ARGV[1] task key prefix    ARGV[2] unique key prefix    ARGV[3] events channel
-- ARGV[4] the tasks, msgpack-encoded: an array of seven-value arrays
--   {id, msg, priority, due (ms; 0 = runnable now), unique digest ('' = none), unique ttl (ms),
--    max retries}
-- Returns one value per task:
--   1 pending, 2 scheduled, 0 the id is taken by a different task,
--   or a string: the id of the live equal task that holds the unique lock.
-- A task whose id exists with the very same msg counts as enqueued (1 or 2): that is a
-- retry of this same call after a lost reply, not a conflict.
--@include wake_pending
--@include zset_head
--@include pending_member

local task_prefix, unique_prefix, events = ARGV[1], ARGV[2], ARGV[3]
local items = cmsgpack.unpack(ARGV[4])
local results = {}
local added_pending = false
local earliest_due = nil
local scheduled_head = zset_head(KEYS[2])
-- One sequence number per item is reserved up front; unused ones leave harmless gaps.
local seq = redis.call('INCRBY', KEYS[3], #items) - #items

for _, item in ipairs(items) do
  local id, msg, priority, due, digest, unique_ttl, max_retry = unpack(item)
  local key = task_prefix .. id
  local existing = redis.call('EXISTS', key) == 1
  local outcome
  if existing then
    if redis.call('HGET', key, 'msg') == msg then
      outcome = (due > 0) and 2 or 1
    else
      outcome = 0
    end
  elseif digest ~= '' and not redis.call('SET', unique_prefix .. digest, id, 'NX', 'PX', unique_ttl) then
    outcome = redis.call('GET', unique_prefix .. digest) or ''
  elseif due > 0 then
    redis.call('HSET', key, 'msg', msg, 'state', 'scheduled', 'pri', priority, 'mr', max_retry,
      'due', due)
    redis.call('ZADD', KEYS[2], due, id)
    if earliest_due == nil or due < earliest_due then
      earliest_due = due
    end
    outcome = 2
  else
    seq = seq + 1
    local member = pending_member(seq, id)
    redis.call('HSET', key, 'msg', msg, 'state', 'pending', 'pri', priority, 'mr', max_retry,
      'pm', member)
    redis.call('ZADD', KEYS[1], -priority, member)
    added_pending = true
    outcome = 1
  end
  if (outcome == 1 or outcome == 2) and not existing and digest ~= '' then
    redis.call('HSET', key, 'uk', digest)
  end
  results[#results + 1] = outcome
end

if added_pending then
  wake_pending(KEYS[4], events)
end
if earliest_due and (scheduled_head == nil or earliest_due < scheduled_head) then
  redis.call('PUBLISH', events, 's')
end
return results
