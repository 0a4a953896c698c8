-- Take up to N pending tasks (highest priority first, FIFO among equals) and make them
-- active under a lease held by one server.
-- KEYS[1] pending zset    KEYS[2] active zset    KEYS[3] paused flag    KEYS[4] idle flag
-- KEYS[5] archived zset
-- ARGV[1] task key prefix    ARGV[2] N    ARGV[3] lease expiry (ms)    ARGV[4] owner (server id)
-- ARGV[5] now (ms)
-- Each task records the expiry as `dq`: it names this call for reclaim.lua.
-- A task whose record is damaged (lib/task_record.lua) is archived with the problem as
-- its error, and another pending task is taken in its place (at most 1,000 such per call).
-- Returns {taken, rejected}: taken is a flat array of (id, msg, retried) per task taken,
-- msg nil when the task's hash is missing (the server archives such a task with an
-- error); rejected a flat array of (id, error) per damaged task archived.
-- Sets the idle flag when the queue had fewer than N tasks or is paused, so that the next
-- enqueue wakes the idle servers.
--@include pending_member
--@include task_record

if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('SET', KEYS[4], '1')
  return {{}, {}}
end
local now = tonumber(ARGV[5])
local wanted = tonumber(ARGV[2])
local taken, rejected = {}, {}
local seq_width = #pending_member(0, '')
local asked = wanted
while asked > 0 do
  local popped = redis.call('ZPOPMIN', KEYS[1], asked)
  local bad = 0
  for i = 1, #popped, 2 do
    local id = string.sub(popped[i], seq_width + 1)
    local key = ARGV[1] .. id
    local problem, kind = record_problem(key)
    if problem then
      archive_corrupt(key, kind, KEYS[5], id, problem, now)
      rejected[#rejected + 1] = id
      rejected[#rejected + 1] = problem
      bad = bad + 1
    else
      local fields = redis.call('HMGET', key, 'msg', 'retried')
      redis.call('HSET', key, 'state', 'active', 'owner', ARGV[4], 'dq', ARGV[3])
      redis.call('ZADD', KEYS[2], ARGV[3], id)
      taken[#taken + 1] = id
      taken[#taken + 1] = fields[1]
      taken[#taken + 1] = fields[2] or '0'
    end
  end
  if #popped < 2 * asked then
    redis.call('SET', KEYS[4], '1')
    break
  end
  asked = bad
  if #rejected >= 2000 then
    break
  end
end
return {taken, rejected}
