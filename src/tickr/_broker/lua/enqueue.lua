-- Enqueue a batch of tasks into one queue.
-- KEYS[1] pending store meta    KEYS[2] scheduled zset    KEYS[3] idle flag
-- KEYS[4] waiters zset    KEYS[5] active zset    KEYS[6] paused flag
-- ARGV[1] task key prefix    ARGV[2] unique key prefix    ARGV[3] events channel
-- ARGV[4] the tasks, msgpack-encoded: an array of eight-value arrays
--   {id, msg, priority, due (ms; 0 = runnable now), unique digest ('' = none), unique ttl (ms),
--    max retries, token (see lib/enqueue_task.lua)}
-- ARGV[5] inbox key prefix    ARGV[6] now (ms)    ARGV[7] inbox lifetime (ms)
-- ARGV[8] lease lengths a hand-off is recorded for (keys.py HANDED_WINDOW_LEASES)
-- ARGV[9] pending store prefix (lib/pending_store.lua)
-- A task runnable now may be handed to an idle server (see lib/enqueue_task.lua).
-- Returns one outcome per task (see lib/enqueue_task.lua):
--   1 pending, 2 scheduled, 0 the id is taken by a different task,
--   or a string: the id of the live equal task that holds the unique lock.
--@include wake_pending
--@include zset_head
--@include pending_store
--@include enqueue_task

local task_prefix, unique_prefix, events = ARGV[1], ARGV[2], ARGV[3]
local items = cmsgpack.unpack(ARGV[4])
local st = store_open(ARGV[9])
local handoff = nil
if st.n == 0 and handoff_open(KEYS[6]) then
  handoff = {waiters = KEYS[4], active = KEYS[5], inbox_prefix = ARGV[5], now = tonumber(ARGV[6]),
    inbox_ttl = ARGV[7], handed_leases = tonumber(ARGV[8])}
end
local results = {}
local added_pending = false
local earliest_due = nil
local scheduled_head = zset_head(KEYS[2])

for _, item in ipairs(items) do
  local outcome, written, handed = enqueue_task(st, KEYS[2], task_prefix, unique_prefix, item,
    handoff)
  if written and outcome == 1 and not handed then
    added_pending = true
    handoff = nil  -- something is pending now: later tasks queue behind it
  elseif written and outcome == 2 and (earliest_due == nil or item[4] < earliest_due) then
    earliest_due = item[4]
  end
  results[#results + 1] = outcome
end
store_close(st)

if added_pending then
  wake_pending(KEYS[3], events)
end
if earliest_due and (scheduled_head == nil or earliest_due < scheduled_head) then
  redis.call('PUBLISH', events, 's')
end
return results
