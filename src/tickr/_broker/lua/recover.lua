-- Take back the tasks of one queue whose lease ran out: their server died, froze or lost
-- its network.  Each returns to retry (due now) with the error 'worker lost', or goes to
-- the archive when it has no retries left or its cancellation was requested.  The
-- attempt counts as processed and failed.  Atomic, so that among many servers racing to
-- recover, each task is taken back exactly once.
-- A task handed to an idle server that never took it off its inbox (the server died
-- right then) never started: it goes back to pending, and no attempt is counted.
-- A task whose record is damaged (lib/task_record.lua) is archived with the problem as
-- its error.  The calling server's registration as a waiter is refreshed, and completed
-- tasks whose retention ran out are forgotten, at the same time.
-- KEYS[1] active    KEYS[2] retry    KEYS[3] archived    KEYS[4] processed
-- KEYS[5] failed    KEYS[6] processed today    KEYS[7] failed today
-- KEYS[8] pending store meta    KEYS[9] waiters    KEYS[10] idle flag    KEYS[11] completed
-- KEYS[12] this hour's minute counters
-- ARGV[1] task key prefix    ARGV[2] unique key prefix    ARGV[3] events channel
-- ARGV[4] done channel    ARGV[5] now (ms)    ARGV[6] daily counter ttl (s)
-- ARGV[7] archive max size    ARGV[8] archive max age (ms)    ARGV[9] most tasks to take
-- ARGV[10] inbox key prefix    ARGV[11] the calling server as a waiter
-- ARGV[12] its registration's new expiry (ms)    ARGV[13] pending store prefix
-- Returns {retried, archived, earliest lease expiry left (ms) or -1, returned to pending}.
--@include zset_head
--@include release_unique
--@include outcomes
--@include trim_archive
--@include wake_pending
--@include trim_completed
--@include task_record
--@include pending_store

local task_prefix, unique_prefix = ARGV[1], ARGV[2]
local events, done = ARGV[3], ARGV[4]
local now = tonumber(ARGV[5])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[9])
local retried, archived, unreceived = 0, 0, 0
local retry_head = nil
local st = nil
redis.call('ZADD', KEYS[9], 'XX', ARGV[12], ARGV[11])

for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local key = task_prefix .. id
  local problem, kind = record_problem(key)
  local task = {}
  if kind == 'hash' then
    task = redis.call('HMGET', key, 'state', 'mr', 'retried', 'uk', 'w', 'cancel', 'owner',
      'msg')
  end
  local handed = not problem and task[7] and task[8]
    and redis.call('LREM', ARGV[10] .. task[7], 1, id .. ' ' .. task[8]) == 1
  if problem and (kind ~= 'hash' or task[1] == 'active') then
    archive_corrupt(key, kind, KEYS[3], id, problem, now)
    task_ended(unique_prefix, task[4], id, task[5], done)
    archived = archived + 1
  elseif problem then
    -- not active: whoever moved it on owns it now
  elseif task[1] == 'active' and handed and not task[6] then
    st = st or store_open(ARGV[13])
    local record = record_from_hash(redis.call('HGETALL', key))
    redis.call('DEL', key)
    pending_push(st, id, record, true)
    unreceived = unreceived + 1
  elseif task[1] == 'active' then
    local max_retry = tonumber(task[2]) or 0
    if not task[6] and (tonumber(task[3]) or 0) < max_retry then
      if retry_head == nil then
        retry_head = zset_head(KEYS[2]) or -1
      end
      retry_task(key, KEYS[2], id, now, 'worker lost', now)
      retried = retried + 1
    else
      archive_task(key, KEYS[3], id, task[6] and 'cancelled' or 'worker lost', now)
      task_ended(unique_prefix, task[4], id, task[5], done)
      archived = archived + 1
    end
  end
end

if st then
  store_close(st)
end
count_attempts({KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[12]}, retried + archived,
  retried + archived, ARGV[6], now)
if retried > 0 and (retry_head < 0 or now < retry_head) then
  redis.call('PUBLISH', events, 's')
end
if archived > 0 then
  trim_archive(KEYS[3], task_prefix, tonumber(ARGV[7]), tonumber(ARGV[8]), now)
end
if unreceived > 0 then
  wake_pending(KEYS[10], ARGV[3])
end
trim_completed(KEYS[11], now)
return {retried, archived, zset_head(KEYS[1]) or -1, unreceived}
