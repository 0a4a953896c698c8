-- Record what happened to tasks a server ran: one batch, one queue.
-- KEYS[1] active    KEYS[2] pending store meta    KEYS[3] retry    KEYS[4] archived
-- KEYS[5] completed    KEYS[6] processed    KEYS[7] failed    KEYS[8] processed today
-- KEYS[9] failed today    KEYS[10] idle flag    KEYS[11] this hour's minute counters
-- KEYS[12] servers waiting for a concurrency slot (zset: server -> when its wait lapses;
-- see dequeue.lua)
-- ARGV[1] task key prefix    ARGV[2] unique key prefix    ARGV[3] events channel
-- ARGV[4] done channel    ARGV[5] now (ms)    ARGV[6] owner (server id)
-- ARGV[7] daily counter ttl (s)    ARGV[8] archive max size    ARGV[9] archive max age (ms)
-- ARGV[10] the outcomes, msgpack-encoded: an array of {op, id, number, text, retries done}
-- ARGV[11] pending store prefix (lib/pending_store.lua)
--   'c' completed:  number = retention (ms),  text = encoded result
--   'r' retry:      number = due time (ms),   text = error message
--   'a' archived:   number = unused,          text = error message
--   'q' requeued (graceful shutdown) to the front of pending: not an attempt, not counted
-- A task whose cancellation was requested (its 'cancel' field) is archived with the error
-- 'cancelled' instead of being retried or requeued.
-- An outcome applies only to the attempt it reports on: the task must be active, held by
-- this owner, with the same number of retries done (recovering a started attempt adds
-- one), so that a
-- late report of an attempt whose lease was lost never touches a later attempt.
-- A task whose record is damaged (lib/task_record.lua) is archived with the problem as its
-- error instead, if this server holds it (a record that is not a hash names no owner:
-- being in the active set suffices).
-- Every call also forgets completed tasks whose retention ran out, and wakes as many
-- servers waiting for a concurrency slot as it freed slots ('w<server id>' on the events
-- channel: only that server dequeues).
-- Returns one value per task: 1 applied, 0 ignored because the server no longer holds the
-- task (its lease was lost and the task recovered, or it was finished already), 2
-- archived because its record is damaged.
--@include wake_pending
--@include zset_head
--@include release_unique
--@include outcomes
--@include pending_store
--@include trim_archive
--@include trim_completed
--@include task_record

local task_prefix, unique_prefix = ARGV[1], ARGV[2]
local events, done = ARGV[3], ARGV[4]
local now, owner, day_ttl = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local results = {}
local processed, failed, requeued, archived = 0, 0, 0, 0
local retry_head, earliest_retry = nil, nil
local freed = 0
local st = nil

for _, outcome in ipairs(cmsgpack.unpack(ARGV[10])) do
  local op, id, number, text, attempt = unpack(outcome)
  local key = task_prefix .. id
  local problem, kind = record_problem(key)
  local task = {}
  if kind == 'hash' then
    task = redis.call('HMGET', key, 'state', 'owner', 'uk', 'w', 'cancel', 'retried')
  end
  if problem and ((task[1] == 'active' and task[2] == owner)
      or (kind ~= 'hash' and redis.call('ZSCORE', KEYS[1], id))) then
    freed = freed + redis.call('ZREM', KEYS[1], id)
    archive_corrupt(key, kind, KEYS[4], id, problem, now)
    task_ended(unique_prefix, task[3], id, task[4], done)
    processed, failed, archived = processed + 1, failed + 1, archived + 1
    results[#results + 1] = 2
  elseif problem or task[1] ~= 'active' or task[2] ~= owner
      or (tonumber(task[6]) or 0) ~= attempt then
    results[#results + 1] = 0
  else
    freed = freed + redis.call('ZREM', KEYS[1], id)
    local final = false
    if task[5] and (op == 'r' or op == 'q') then
      op, text = 'a', 'cancelled'
    end
    if op == 'c' then
      processed = processed + 1
      final = true
      if number > 0 then
        redis.call('HSET', key, 'state', 'completed', 'done', now, 'result', text)
        redis.call('HDEL', key, 'owner', 'cancel')
        redis.call('PEXPIRE', key, number)
        redis.call('ZADD', KEYS[5], now + number, id)
      else
        redis.call('DEL', key)
      end
    elseif op == 'r' then
      processed, failed = processed + 1, failed + 1
      if retry_head == nil then
        retry_head = zset_head(KEYS[3]) or -1
      end
      retry_task(key, KEYS[3], id, number, text, now)
      if earliest_retry == nil or number < earliest_retry then
        earliest_retry = number
      end
    elseif op == 'a' then
      processed, failed = processed + 1, failed + 1
      final = true
      archive_task(key, KEYS[4], id, text, now)
      archived = archived + 1
    else
      st = st or store_open(ARGV[11])
      local record = record_from_hash(redis.call('HGETALL', key))
      redis.call('DEL', key)
      pending_push(st, id, record, true)
      requeued = requeued + 1
    end
    if final then
      task_ended(unique_prefix, task[3], id, task[4], done)
    end
    results[#results + 1] = 1
  end
end

if st then
  store_close(st)
end
count_attempts({KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[11]}, processed, failed, day_ttl, now)
if requeued > 0 then
  wake_pending(KEYS[10], events)
end
if earliest_retry and (retry_head < 0 or earliest_retry < retry_head) then
  redis.call('PUBLISH', events, 's')
end
if archived > 0 then
  trim_archive(KEYS[4], task_prefix, tonumber(ARGV[8]), tonumber(ARGV[9]), now)
end
trim_completed(KEYS[5], now)
if freed > 0 and redis.call('EXISTS', KEYS[12]) == 1 then  -- a concurrency limit is full
  redis.call('ZREMRANGEBYSCORE', KEYS[12], '-inf', now)  -- waits of servers gone since
  -- One more than the slots freed: a server that stopped within its lease may still be
  -- listed, and must not take the only wake-up.
  local waiting = redis.call('ZPOPMIN', KEYS[12], freed + 1)
  for i = 1, #waiting, 2 do
    redis.call('PUBLISH', events, 'w' .. waiting[i])
  end
end
return results
