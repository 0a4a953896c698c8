-- Delete a batch of a queue's tasks, in every state, active ones included (a forced
-- delete of the queue): up to LIMIT tasks from each state, with their unique locks.
-- KEYS[1] pending store meta    KEYS[2] active    KEYS[3] scheduled    KEYS[4] retry
-- KEYS[5] archived    KEYS[6] completed
-- ARGV[1] task key prefix    ARGV[2] unique key prefix    ARGV[3] limit
-- ARGV[4] pending store prefix (lib/pending_store.lua)
-- Returns the number of tasks left in the queue.
--@include pending_store

local function release(digest, id)
  if digest and redis.call('GET', ARGV[2] .. digest) == id then
    redis.call('DEL', ARGV[2] .. digest)
  end
end

local limit = tonumber(ARGV[3])
local st = store_open(ARGV[4])
local entries, ran_out = pending_take(st, limit, function() return false end)
for _, entry in ipairs(entries) do
  if entry[2] then
    release(record_field(entry[2], 'uk'), entry[1])
  end
end
store_close(st)
local left = st.n
if left == 0 and ran_out then
  local priorities = redis.call('ZRANGE', st.prefix .. 'pri', 0, -1)
  for _, name in ipairs(priorities) do
    redis.call('DEL', st.prefix .. 'l:' .. name)
  end
  redis.call('DEL', st.prefix .. 'pri', st.prefix .. 'gone', st.prefix .. 'meta',
    st.prefix .. 'lanes', st.prefix .. 'turn')
elseif left == 0 then
  left = 1  -- entries left to skip: call again
end

for index = 2, #KEYS do
  local set = KEYS[index]
  local ids = redis.call('ZRANGE', set, 0, limit - 1)
  for _, id in ipairs(ids) do
    local key = ARGV[1] .. id
    local ok, digest = pcall(redis.call, 'HGET', key, 'uk')
    release(ok and digest or nil, id)
    redis.call('DEL', key)
    redis.call('ZREM', set, id)
  end
  left = left + redis.call('ZCARD', set)
end
return left
