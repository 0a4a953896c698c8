-- Extend the leases of the tasks a server holds.
-- KEYS[1] active zset
-- ARGV[1] task key prefix    ARGV[2] owner (server id)    ARGV[3] new lease expiry (ms)
-- ARGV[4..] task ids
-- Returns {lost, cancelled}: ids the server no longer holds (it must stop them and not
-- report on them), and ids whose cancellation was requested.
local lost, cancelled = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local task = redis.call('HMGET', ARGV[1] .. id, 'owner', 'cancel')
  if task[1] == ARGV[2] then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[3], id)
    if task[2] then
      cancelled[#cancelled + 1] = id
    end
  else
    lost[#lost + 1] = id
  end
end
return {lost, cancelled}
