-- Find the tasks that one dequeue call gave to a server whose reply was lost (a broken
-- connection, a cancellation): they are active, held by that owner, under the very lease
-- expiry that call set (each call of a server sets its own), and were taken by that call
-- (`dq`): a hand-off or a renewal may set the same expiry on another task of the server.
-- Nothing is changed.
-- KEYS[1] active zset
-- ARGV[1] task key prefix    ARGV[2] owner (server id)    ARGV[3] the call's lease expiry (ms)
-- Returns a flat array of (id, msg, retried, ready) per task, as dequeue.lua does.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[3], ARGV[3])
local found = {}
for _, id in ipairs(ids) do
  local task = redis.call('HMGET', ARGV[1] .. id, 'owner', 'state', 'msg', 'retried', 'dq', 'rdy')
  if task[1] == ARGV[2] and task[2] == 'active' and task[5] == ARGV[3] then
    found[#found + 1] = id
    found[#found + 1] = task[3]
    found[#found + 1] = task[4] or '0'
    found[#found + 1] = task[6] or '0'
  end
end
return found
