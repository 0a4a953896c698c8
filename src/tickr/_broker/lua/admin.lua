-- An operator's action on one task: delete, run now, or archive (see lib/manage_task.lua).
-- KEYS[1] pending    KEYS[2] scheduled    KEYS[3] retry    KEYS[4] archived
-- KEYS[5] completed    KEYS[6] seq counter    KEYS[7] idle flag
-- ARGV[1] task key prefix    ARGV[2] unique key prefix    ARGV[3] events channel
-- ARGV[4] done channel    ARGV[5] now (ms)    ARGV[6] op    ARGV[7] task id
-- Returns {1 done / 0 not possible in that state / -1 no such task, the task's state}.
--@include wake_pending
--@include pending_member
--@include release_unique
--@include task_record
--@include manage_task

local q = {
  prefix = ARGV[1], unique = ARGV[2], done = ARGV[4], now = tonumber(ARGV[5]),
  pending = KEYS[1], scheduled = KEYS[2], retry = KEYS[3], archived = KEYS[4],
  completed = KEYS[5], seq = KEYS[6],
}
local code, state = manage_task(q, ARGV[6], ARGV[7])
if q.woken then
  wake_pending(KEYS[7], ARGV[3])
end
return {code, state}
