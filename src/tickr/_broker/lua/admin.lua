-- An operator's action on one task: delete, run now, or archive (see lib/manage_task.lua).
-- KEYS[1] pending store meta    KEYS[2] scheduled    KEYS[3] retry    KEYS[4] archived
-- KEYS[5] completed    KEYS[6] idle flag
-- ARGV[1] task key prefix    ARGV[2] unique key prefix    ARGV[3] events channel
-- ARGV[4] done channel    ARGV[5] now (ms)    ARGV[6] pending store prefix
-- ARGV[7] op    ARGV[8] task id
-- Returns {1 done / 0 not possible in that state / -1 no such task, the task's state}.
--@include wake_pending
--@include release_unique
--@include task_record
--@include pending_store
--@include manage_task

local q = {
  prefix = ARGV[1], unique = ARGV[2], done = ARGV[4], now = tonumber(ARGV[5]),
  st = store_open(ARGV[6]), scheduled = KEYS[2], retry = KEYS[3], archived = KEYS[4],
  completed = KEYS[5],
}
local code, state = manage_task(q, ARGV[7], ARGV[8])
store_close(q.st)
if q.woken then
  wake_pending(KEYS[6], ARGV[3])
end
return {code, state}
