-- An operator's action on a batch of the tasks in one state (see lib/manage_task.lua):
-- the first LIMIT tasks of that state.  Called again until it reports none left.
-- KEYS[1] pending store meta    KEYS[2] scheduled    KEYS[3] retry    KEYS[4] archived
-- KEYS[5] completed    KEYS[6] idle flag
-- ARGV[1] task key prefix    ARGV[2] unique key prefix    ARGV[3] events channel
-- ARGV[4] done channel    ARGV[5] now (ms)    ARGV[6] pending store prefix
-- ARGV[7] op    ARGV[8] state    ARGV[9] limit
-- Returns {tasks done, tasks left in that state}.
--@include wake_pending
--@include release_unique
--@include task_record
--@include pending_store
--@include manage_task

local q = {
  prefix = ARGV[1], unique = ARGV[2], done = ARGV[4], now = tonumber(ARGV[5]),
  st = store_open(ARGV[6]), scheduled = KEYS[2], retry = KEYS[3], archived = KEYS[4],
  completed = KEYS[5],
}
local op, state, limit = ARGV[7], ARGV[8], tonumber(ARGV[9])
local done = 0
local left
if state == 'pending' then
  if op ~= 'run' then
    local entries = pending_take(q.st, limit, function(id)
      return redis.call('EXISTS', q.prefix .. id) == 1
    end)
    for _, entry in ipairs(entries) do
      if entry[2] or entry[3] then  -- not an entry whose record vanished
        local code = manage_pending(q, op, entry[1], entry[2] or nil, entry[3])
        if code == 1 then
          done = done + 1
        end
      end
    end
  end
  left = q.st.n
else
  local sets = {scheduled = KEYS[2], retry = KEYS[3], archived = KEYS[4], completed = KEYS[5]}
  local set = sets[state]
  local ids = redis.call('ZRANGE', set, 0, limit - 1)
  for _, id in ipairs(ids) do
    local code = manage_task(q, op, id)
    if code == 1 then
      done = done + 1
    elseif code == -1 then
      redis.call('ZREM', set, id)  -- an entry without its task: drop it
    end
  end
  left = redis.call('ZCARD', set)
end
store_close(q.st)
if q.woken then
  wake_pending(KEYS[6], ARGV[3])
end
return {done, left}
