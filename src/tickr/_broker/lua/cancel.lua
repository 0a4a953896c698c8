-- Cancel one task: delete it while it waits, or ask its server to stop it while active.
-- KEYS[1] task hash    KEYS[2] pending zset    KEYS[3] scheduled zset    KEYS[4] retry zset
-- ARGV[1] task id    ARGV[2] unique key prefix    ARGV[3] events channel    ARGV[4] done channel
-- Returns -1 no such task, 0 nothing to cancel (completed or archived), 1 deleted,
-- 2 active: cancellation requested (published, and flagged for the server's next lease
-- renewal in case the message is missed).
--@include release_unique

local task = redis.call('HMGET', KEYS[1], 'state', 'pm', 'uk', 'w')
local state, id = task[1], ARGV[1]
if not state then
  return -1
end
if state == 'active' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
  redis.call('PUBLISH', ARGV[3], 'c' .. id)
  return 2
end
if state == 'pending' then
  redis.call('ZREM', KEYS[2], task[2])
elseif state == 'scheduled' then
  redis.call('ZREM', KEYS[3], id)
elseif state == 'retry' then
  redis.call('ZREM', KEYS[4], id)
else
  return 0
end
redis.call('DEL', KEYS[1])
release_unique(ARGV[2], task[3], id)
if task[4] then
  redis.call('PUBLISH', ARGV[4], id)
end
return 1
