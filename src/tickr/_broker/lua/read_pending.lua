-- Read the pending records of some tasks (lib/pending_store.lua); nothing is changed.
-- KEYS[1] pending store meta
-- ARGV[1] pending store prefix    ARGV[2...] task ids
-- Returns one value per id: its raw record, or false when it is not pending.
--@include pending_store

local st = store_open(ARGV[1])
local records = {}
for i = 2, #ARGV do
  records[#records + 1] = store_get(st, ARGV[i]) or false
end
return records
