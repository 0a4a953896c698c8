-- Delete a batch of a queue's tasks, in every state, active ones included (a forced
-- delete of the queue): up to LIMIT tasks from each set, with their unique locks.
-- KEYS[1] pending    KEYS[2] active    KEYS[3] scheduled    KEYS[4] retry
-- KEYS[5] archived    KEYS[6] completed
-- ARGV[1] task key prefix    ARGV[2] unique key prefix    ARGV[3] limit
-- Returns the number of tasks left in the queue's sets.
--@include pending_member

local seq_width = #pending_member(0, '')
local left = 0
for index, set in ipairs(KEYS) do
  local members = redis.call('ZRANGE', set, 0, tonumber(ARGV[3]) - 1)
  for _, member in ipairs(members) do
    local id = member
    if index == 1 then
      id = string.sub(member, seq_width + 1)
    end
    local key = ARGV[1] .. id
    local digest = redis.call('HGET', key, 'uk')
    if digest and redis.call('GET', ARGV[2] .. digest) == id then
      redis.call('DEL', ARGV[2] .. digest)
    end
    redis.call('DEL', key)
    redis.call('ZREM', set, member)
  end
  left = left + redis.call('ZCARD', set)
end
return left
