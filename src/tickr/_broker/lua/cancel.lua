-- Cancel one task: delete it while it waits, or ask its server to stop it while active.
-- KEYS[1] task hash    KEYS[2] pending store meta    KEYS[3] scheduled zset
-- KEYS[4] retry zset
-- ARGV[1] task id    ARGV[2] unique key prefix    ARGV[3] events channel    ARGV[4] done channel
-- ARGV[5] pending store prefix (lib/pending_store.lua)
-- Returns -1 no such task, 0 nothing to cancel (completed or archived), 1 deleted,
-- 2 active: cancellation requested (published, and flagged for the server's next lease
-- renewal in case the message is missed).
--@include release_unique
--@include pending_store

local task = redis.call('HMGET', KEYS[1], 'state', 'uk', 'w')
local state, id = task[1], ARGV[1]
if not state then
  local st = store_open(ARGV[5])
  local raw = store_get(st, id)
  if not raw then
    return -1
  end
  local record = record_read(raw)
  pending_remove(st, id, record)
  store_close(st)
  release_unique(ARGV[2], record and record_field(record, 'uk'), id)
  if record and record_field(record, 'w') then
    redis.call('PUBLISH', ARGV[4], id)
  end
  return 1
end
if state == 'active' then
  redis.call('HSET', KEYS[1], 'cancel', '1')
  redis.call('PUBLISH', ARGV[3], 'c' .. id)
  return 2
end
if state == 'scheduled' then
  redis.call('ZREM', KEYS[3], id)
elseif state == 'retry' then
  redis.call('ZREM', KEYS[4], id)
else
  return 0
end
redis.call('DEL', KEYS[1])
release_unique(ARGV[2], task[2], id)
if task[3] then
  redis.call('PUBLISH', ARGV[4], id)
end
return 1
