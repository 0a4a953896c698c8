-- An operator's action on a batch of the tasks in one state (see lib/manage_task.lua):
-- the first LIMIT tasks of that state's set.  Called again until it reports none left.
-- KEYS[1] pending    KEYS[2] scheduled    KEYS[3] retry    KEYS[4] archived
-- KEYS[5] completed    KEYS[6] seq counter    KEYS[7] idle flag
-- ARGV[1] task key prefix    ARGV[2] unique key prefix    ARGV[3] events channel
-- ARGV[4] done channel    ARGV[5] now (ms)    ARGV[6] op    ARGV[7] state    ARGV[8] limit
-- Returns {tasks done, tasks left in that state}.
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
local sets = {pending = KEYS[1], scheduled = KEYS[2], retry = KEYS[3], archived = KEYS[4],
  completed = KEYS[5]}
local set = sets[ARGV[7]]
local members = redis.call('ZRANGE', set, 0, tonumber(ARGV[8]) - 1)
local seq_width = #pending_member(0, '')
local done = 0
for _, member in ipairs(members) do
  local id = member
  local pending = nil
  if ARGV[7] == 'pending' then
    id = string.sub(member, seq_width + 1)
    pending = member
  end
  local code = manage_task(q, ARGV[6], id, pending)
  if code == 1 then
    done = done + 1
  elseif code == -1 then
    redis.call('ZREM', set, member)  -- an entry without its task: drop it
  end
end
if q.woken then
  wake_pending(KEYS[7], ARGV[3])
end
return {done, redis.call('ZCARD', set)}
