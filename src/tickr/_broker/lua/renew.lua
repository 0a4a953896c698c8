-- Extend the leases of the tasks a server holds.
-- KEYS[1] active zset
-- ARGV[1] task key prefix    ARGV[2] owner (server id)    ARGV[3] new lease expiry (ms)
-- ARGV[4..] task ids
-- Returns {lost, cancelled}: ids the server no longer holds (it must stop them and not
-- report on them), and ids whose cancellation was requested.  A task whose record is no
-- longer a hash counts as lost: its lease runs out and recover.lua archives it.
local lost, cancelled = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = ARGV[1] .. id
  local task = {}
  if redis.call('TYPE', key)['ok'] == 'hash' then
    task = redis.call('HMGET', key, 'owner', 'cancel')
  end
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
