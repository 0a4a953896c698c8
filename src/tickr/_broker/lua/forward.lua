-- Move scheduled and retry tasks that are due to pending (their hashes become pending
-- records, lib/pending_store.lua).
-- KEYS[1] scheduled zset    KEYS[2] retry zset    KEYS[3] pending store meta
-- KEYS[4] idle flag    KEYS[5] archived zset
-- ARGV[1] task key prefix    ARGV[2] now (ms)    ARGV[3] most tasks to move per set
-- ARGV[4] events channel    ARGV[5] pending store prefix
-- Returns {moved, earliest due time left in either set (ms), or -1 when both are empty,
-- {id, error, ...} of the tasks set aside}.
-- A moved task's record keeps its due time as when it became ready (`rdy`).
-- A due task whose record is damaged or vanished is archived alone, with the problem as
-- its error: it is never dropped unseen.
--@include wake_pending
--@include zset_head
--@include pending_store
--@include task_record

local moved = 0
local set_aside = {}
local st = store_open(ARGV[5])
for set = 1, 2 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[set], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
  if #ids > 0 then
    for _, id in ipairs(ids) do
      local key = ARGV[1] .. id
      local problem, kind = record_problem(key)
      if kind == 'none' then
        problem = 'task data is missing'
      end
      if problem then
        archive_corrupt(key, kind, KEYS[5], id, problem, ARGV[2])
        set_aside[#set_aside + 1] = id
        set_aside[#set_aside + 1] = problem
      else
        local record = record_from_hash(redis.call('HGETALL', key), true)
        redis.call('DEL', key)
        pending_push(st, id, record, false)
        moved = moved + 1
      end
    end
    redis.call('ZREM', KEYS[set], unpack(ids))
  end
end
store_close(st)
if moved > 0 then
  wake_pending(KEYS[4], ARGV[4])
end

local earliest = -1
for set = 1, 2 do
  local head = zset_head(KEYS[set])
  if head and (earliest < 0 or head < earliest) then
    earliest = head
  end
end
return {moved, earliest, set_aside}
