-- Take up to N pending tasks (highest priority first, FIFO among equals) and make them
-- active under a lease held by one server: each gets its task hash, made from its pending
-- record (lib/pending_store.lua).
-- KEYS[1] pending store meta    KEYS[2] active zset    KEYS[3] paused flag    KEYS[4] idle flag
-- KEYS[5] archived zset
-- ARGV[1] task key prefix    ARGV[2] N    ARGV[3] lease expiry (ms)    ARGV[4] owner (server id)
-- ARGV[5] now (ms)    ARGV[6] pending store prefix
-- Each task records the expiry as `dq`: it names this call for reclaim.lua.
-- A task whose record is damaged is archived with the problem as its error, and another
-- pending task is taken in its place.
-- Returns {taken, rejected}: taken is a flat array of (id, msg, retried, ready) per task
-- taken, msg nil when the task's record vanished (the server archives such a task with
-- an error), ready the due time (ms) it became runnable at, 0 when that was its enqueue;
-- rejected a flat array of (id, error) per damaged task archived.
-- Sets the idle flag when the queue had fewer than N tasks or is paused, so that the next
-- enqueue wakes the idle servers.
--@include pending_store
--@include task_record

if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('SET', KEYS[4], '1')
  return {{}, {}}
end
local now = tonumber(ARGV[5])
local wanted = tonumber(ARGV[2])
local prefix = ARGV[1]
local taken, rejected = {}, {}
local st = store_open(ARGV[6])
local function busy(id)
  return redis.call('EXISTS', prefix .. id) == 1
end
local ran_out = false
while #taken / 4 < wanted and #rejected < 2000 and not ran_out do
  local entries
  entries, ran_out = pending_take(st, wanted - #taken / 4, busy)
  if #entries == 0 then
    ran_out = true
  end
  for _, entry in ipairs(entries) do
    local id, record, problem = entry[1], entry[2], entry[3]
    local key = prefix .. id
    if problem then
      redis.call('DEL', key)
      archive_corrupt(key, 'none', KEYS[5], id, problem, now)
      rejected[#rejected + 1] = id
      rejected[#rejected + 1] = problem
    else
      local fields = record and record_fields(record) or {}
      local written = redis.pcall('HSET', key, 'state', 'active', 'owner', ARGV[4], 'dq', ARGV[3],
        unpack(fields))
      if type(written) == 'table' then  -- a stray key of another type sits on its name
        redis.call('DEL', key)
        redis.call('HSET', key, 'state', 'active', 'owner', ARGV[4], 'dq', ARGV[3], unpack(fields))
      end
      redis.call('ZADD', KEYS[2], ARGV[3], id)
      taken[#taken + 1] = id
      taken[#taken + 1] = record and record[1] or false
      taken[#taken + 1] = record and record_field(record, 'retried') or '0'
      taken[#taken + 1] = record and record_field(record, 'rdy') or '0'
    end
  end
end
store_close(st)
if #taken / 4 < wanted then
  redis.call('SET', KEYS[4], '1')
end
return {taken, rejected}
