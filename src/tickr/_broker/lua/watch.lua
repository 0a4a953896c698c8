-- Read a task's outcome and mark that somebody waits on it, so that finishing the task
-- publishes its id on the queue's done channel.
-- KEYS[1] task hash    KEYS[2] pending store meta
-- ARGV[1] task id    ARGV[2] pending store prefix (lib/pending_store.lua)
-- Returns nil when the task does not exist, else {state, result, error}.
--@include pending_store

if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'w', '1')
  return redis.call('HMGET', KEYS[1], 'state', 'result', 'err')
end
local st = store_open(ARGV[2])
local raw = store_get(st, ARGV[1])
if not raw then
  return false
end
local record = record_read(raw)
if record then
  store_set(st, ARGV[1], cmsgpack.pack(record_with(record, 'w', '1')))
  return {'pending', false, record_field(record, 'err') or false}
end
return {'pending', false, false}
