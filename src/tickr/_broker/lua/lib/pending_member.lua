-- pending_member(seq, id): the member of a task in the pending set. Members of equal
-- priority sort by their fixed-width hex sequence number, which makes them FIFO.
local function pending_member(seq, id)
  return string.format('%012x', seq) .. id
end
