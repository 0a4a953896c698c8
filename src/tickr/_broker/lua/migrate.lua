-- Move a batch of pending tasks written by Tickr 0.1 into the pending store (0.1 kept a
-- sorted set of "<12 hex digits of sequence><id>" members and a hash per task), in their
-- run order.  Called until it reports none left; tasks in other states need no change.
-- KEYS[1] the 0.1 pending zset    KEYS[2] pending store meta
-- ARGV[1] task key prefix    ARGV[2] pending store prefix    ARGV[3] limit
-- Returns {tasks moved, members left}.
--@include pending_store

local st = store_open(ARGV[2])
local members = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[3]))
local moved = 0
for i = 1, #members, 2 do
  local id = string.sub(members[i], 13)
  local key = ARGV[1] .. id
  if redis.call('TYPE', key)['ok'] == 'hash' and redis.call('HGET', key, 'state') == 'pending' then
    local record = record_from_hash(redis.call('HGETALL', key))
    redis.call('DEL', key)
    pending_push(st, id, record, false)
    moved = moved + 1
  end
end
store_close(st)
return {moved, redis.call('ZCARD', KEYS[1])}
