-- Read one task, wherever it is, in one atomic step: its hash, or else its pending
-- record (lib/pending_store.lua).  Two separate reads could both miss a task that moved
-- between them (pending -> active makes the hash and drops the record).  Nothing is
-- changed.
-- KEYS[1] the task's key    KEYS[2] pending store meta
-- ARGV[1] pending store prefix    ARGV[2] task id
-- Returns {'hash', field, value, ...}, {'pending', raw record}, {'damaged', type} for a
-- key of another type, or {'none'}.
--@include pending_store

local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'hash' then
  local reply = redis.call('HGETALL', KEYS[1])
  table.insert(reply, 1, 'hash')
  return reply
end
if kind ~= 'none' then
  return {'damaged', kind}
end
local raw = store_get(store_open(ARGV[1]), ARGV[2])
if raw then
  return {'pending', raw}
end
return {'none'}
