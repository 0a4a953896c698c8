-- Move scheduled and retry tasks that are due to pending.
-- KEYS[1] scheduled zset    KEYS[2] retry zset    KEYS[3] pending zset    KEYS[4] seq counter
-- KEYS[5] idle flag    KEYS[6] archived zset
-- ARGV[1] task key prefix    ARGV[2] now (ms)    ARGV[3] most tasks to move per set
-- ARGV[4] events channel
-- Returns {moved, earliest due time left in either set (ms), or -1 when both are empty,
-- {id, error, ...} of the tasks set aside}.
-- A due task whose record is damaged is archived alone.  One whose record vanished goes
-- on to pending, where the dequeue archives it as missing: it is never dropped unseen.
--@include wake_pending
--@include zset_head
--@include pending_member
--@include task_record

local moved = 0
local set_aside = {}
for set = 1, 2 do
  local ids = redis.call('ZRANGEBYSCORE', KEYS[set], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
  if #ids > 0 then
    local seq = redis.call('INCRBY', KEYS[4], #ids) - #ids
    for _, id in ipairs(ids) do
      seq = seq + 1
      local key = ARGV[1] .. id
      local problem, kind = record_problem(key)
      if problem then
        archive_corrupt(key, kind, KEYS[6], id, problem, ARGV[2])
        set_aside[#set_aside + 1] = id
        set_aside[#set_aside + 1] = problem
      else
        local priority = tonumber(redis.call('HGET', key, 'pri')) or 0
        local member = pending_member(seq, id)
        redis.call('ZADD', KEYS[3], -priority, member)
        redis.call('HSET', key, 'state', 'pending', 'pm', member)
        redis.call('HDEL', key, 'due')
        moved = moved + 1
      end
    end
    redis.call('ZREM', KEYS[set], unpack(ids))
  end
end
if moved > 0 then
  wake_pending(KEYS[5], ARGV[4])
end

local earliest = -1
for set = 1, 2 do
  local head = zset_head(KEYS[set])
  if head and (earliest < 0 or head < earliest) then
    earliest = head
  end
end
return {moved, earliest, set_aside}
