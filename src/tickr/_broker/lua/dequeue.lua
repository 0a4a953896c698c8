-- Take up to N pending tasks (highest priority first, FIFO among equals) and make them
-- active under a lease held by one server.
-- KEYS[1] pending zset    KEYS[2] active zset    KEYS[3] paused flag    KEYS[4] idle flag
-- ARGV[1] task key prefix    ARGV[2] N    ARGV[3] lease expiry (ms)    ARGV[4] owner (server id)
-- Each task records the expiry as `dq`: it names this call for reclaim.lua.
-- Returns a flat array of (id, msg, retried) per task taken; msg is nil when the task's
-- hash is missing (the server archives such a task with an error).
-- Sets the idle flag when the queue had fewer than N tasks or is paused, so that the next
-- enqueue wakes the idle servers.
--@include pending_member

if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('SET', KEYS[4], '1')
  return {}
end
local wanted = tonumber(ARGV[2])
local popped = redis.call('ZPOPMIN', KEYS[1], wanted)
local taken = {}
local seq_width = #pending_member(0, '')
for i = 1, #popped, 2 do
  local id = string.sub(popped[i], seq_width + 1)
  local key = ARGV[1] .. id
  local fields = redis.call('HMGET', key, 'msg', 'retried')
  redis.call('HSET', key, 'state', 'active', 'owner', ARGV[4], 'dq', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[3], id)
  taken[#taken + 1] = id
  taken[#taken + 1] = fields[1]
  taken[#taken + 1] = fields[2] or '0'
end
if #popped < 2 * wanted then
  redis.call('SET', KEYS[4], '1')
end
return taken
