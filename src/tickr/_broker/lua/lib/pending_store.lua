-- The pending store: where a task lives while it waits to run (see keys.py).
-- A pending task has no hash of its own.  Its record, cmsgpack {msg, priority, max
-- retries, field, value, ...} (the fields of its hash that still mean something while it
-- waits: retried, err, uk, tok, w, ...), is an entry of one of the bucket hashes
-- `<p>b:<n>`, found from the id by linear hashing, so that buckets stay small enough for
-- Redis' compact listpack encoding however many tasks wait.  `<p>meta` holds the number of
-- records (n), the hashing level (k) and the split pointer (s).  The run order is one list
-- of ids per priority (`<p>l:<priority>`); `<p>pri` ranks the priorities whose list exists.
-- Removing a task from the middle of a long list would cost a scan of it, so its entry
-- stays there and is counted in `<p>gone` (id -> entries to skip); every entry is checked
-- against the record when it is taken: one whose record is gone or lives in another
-- priority's (or lane's) list is skipped.  Lanes: see below.

local PENDING_LOAD = 16          -- records per bucket before the next split
local PENDING_LREM_MAX = 10000   -- lists up to this long lose an entry at once (LREM)
local PENDING_SKIP_MAX = 10000   -- skipped entries per call, at most

-- id_hash(id): a 32-bit hash: the last 8 hex digits of a hex id (random in a uuid4), else
-- a multiplicative hash of every byte (keys.py pending_hash does the same).
local function id_hash(id)
  if #id >= 8 then
    local tail = string.sub(id, -8)
    if not string.find(tail, '[^%x]') then
      return tonumber(tail, 16)
    end
  end
  local h = 0
  for i = 1, #id do
    h = (h * 31 + string.byte(id, i)) % 4294967296
  end
  return h
end

local function store_open(prefix)
  local meta = redis.call('HMGET', prefix .. 'meta', 'n', 'k', 's')
  local k = tonumber(meta[2]) or 0
  return {prefix = prefix, n = tonumber(meta[1]) or 0, k = k, size = 2 ^ k,
    s = tonumber(meta[3]) or 0, changed = false, lists = {}}
end

-- store_close(st): write back what changed in the store's meta.
local function store_close(st)
  if not st.changed then
    return
  end
  if st.n <= 0 then
    redis.call('DEL', st.prefix .. 'meta')
  else
    redis.call('HSET', st.prefix .. 'meta', 'n', st.n, 'k', st.k, 's', st.s)
  end
end

local function bucket_key(st, id)
  local h = id_hash(id)
  local bucket = h % st.size
  if bucket < st.s then
    bucket = h % (st.size * 2)
  end
  return st.prefix .. 'b:' .. bucket
end

-- store_split(st): split bucket s in two (linear hashing): its records whose hash at the
-- next level names bucket s + 2^k move there.
local function store_split(st)
  local size = st.size
  local old = st.prefix .. 'b:' .. st.s
  local entries = redis.pcall('HGETALL', old)
  if entries.err == nil then
    local moved, names = {}, {}
    for i = 1, #entries, 2 do
      if id_hash(entries[i]) % (size * 2) ~= st.s then
        moved[#moved + 1] = entries[i]
        moved[#moved + 1] = entries[i + 1]
        names[#names + 1] = entries[i]
      end
    end
    if #names > 0 then
      redis.call('HSET', st.prefix .. 'b:' .. (st.s + size), unpack(moved))
      redis.call('HDEL', old, unpack(names))
    end
  end
  st.s = st.s + 1
  if st.s >= size then
    st.k, st.s, st.size = st.k + 1, 0, size * 2
  end
end

-- store_get(st, id): the raw record, or false; an error when its bucket is damaged; and
-- the bucket's key.
local function store_get(st, id)
  local bucket = bucket_key(st, id)
  local raw = redis.pcall('HGET', bucket, id)
  if type(raw) == 'table' then
    return false, 'corrupt pending store: ' .. tostring(raw.err), bucket
  end
  return raw, nil, bucket
end

local function store_added(st)
  st.n, st.changed = st.n + 1, true
  if st.n > PENDING_LOAD * (st.size + st.s) then
    store_split(st)
  end
end

-- store_add(st, id, raw): write a new record; false (and nothing written) when the id
-- has one already.
local function store_add(st, id, raw)
  if redis.call('HSETNX', bucket_key(st, id), id, raw) == 0 then
    return false
  end
  store_added(st)
  return true
end

-- store_set(st, id, raw): write a record (new or replacing), splitting when due.
local function store_set(st, id, raw)
  if redis.call('HSET', bucket_key(st, id), id, raw) == 1 then
    store_added(st)
  end
end

-- store_remove(st, id, bucket): drop a record (`bucket`: its key, when known).
local function store_remove(st, id, bucket)
  local ok, removed = pcall(redis.call, 'HDEL', bucket or bucket_key(st, id), id)
  if ok and removed == 1 then
    st.n, st.changed = st.n - 1, true
    if st.n <= 0 then
      st.n, st.k, st.s, st.size = 0, 0, 0, 1  -- every bucket is empty, so gone
    end
  end
end

-- record_read(raw): the record as a table, or nil and why it cannot be used.
local function record_read(raw)
  local ok, record = pcall(cmsgpack.unpack, raw)
  if not ok or type(record) ~= 'table' or type(record[1]) ~= 'string'
      or type(record[2]) ~= 'number' or type(record[3]) ~= 'number' then
    return nil, 'corrupt pending record: not a record of ' .. #raw .. ' bytes'
  end
  return record, nil
end

-- Fields of a task hash that mean nothing while it waits.
local PENDING_DROPPED = {msg = true, pri = true, mr = true, state = true, pm = true, due = true,
  owner = true, dq = true, cancel = true, rdy = true}

-- record_from_hash(fields): a record from a task hash's HGETALL reply.
-- With `ready`, the record keeps the hash's due time as `rdy`: when the task became
-- runnable, which the server measures its wait from (a task without one waited since
-- its enqueue).
local function record_from_hash(fields, ready)
  local by_name = {}
  local record = {false, 0, 0}
  for i = 1, #fields, 2 do
    by_name[fields[i]] = fields[i + 1]
    if not PENDING_DROPPED[fields[i]] then
      record[#record + 1] = fields[i]
      record[#record + 1] = fields[i + 1]
    end
  end
  record[1] = by_name.msg or ''
  record[2] = tonumber(by_name.pri) or 0
  record[3] = tonumber(by_name.mr) or 0
  if ready and by_name.due then
    record[#record + 1] = 'rdy'
    record[#record + 1] = by_name.due
  end
  return record
end

-- record_fields(record): the hash fields a record stands for (HSET arguments).
local function record_fields(record)
  local fields = {'msg', record[1], 'pri', record[2], 'mr', record[3]}
  for i = 4, #record do
    fields[#fields + 1] = record[i]
  end
  return fields
end

-- record_field(record, name): the value of an extra field, or nil.
local function record_field(record, name)
  for i = 4, #record - 1, 2 do
    if record[i] == name then
      return record[i + 1]
    end
  end
  return nil
end

-- record_with(record, name, value): the record with an extra field set.
local function record_with(record, name, value)
  for i = 4, #record - 1, 2 do
    if record[i] == name then
      record[i + 1] = value
      return record
    end
  end
  record[#record + 1] = name
  record[#record + 1] = value
  return record
end

local function priority_name(priority)
  return string.format('%d', priority)
end

-- Lanes.  A record with an `ln` field waits in the run order of its lane:
-- `<p>n:<lane>:l:<priority>` and `<p>n:<lane>:pri`, as the tasks without a lane wait in
-- `<p>l:<priority>` and `<p>pri`.  While some lane has tasks, `<p>lanes` ranks the lanes
-- (the tasks without a lane among them, as '') by their turn, and a take serves them
-- round-robin, one task per turn (`<p>turn` counts the turns); without lanes nothing of
-- this is read but one EXISTS per call.

local function record_lane(record)
  return (record and record_field(record, 'ln')) or ''
end

-- line_keys(st, lane): the list prefix and the priority zset of a lane's run order.
local function line_keys(st, lane)
  if lane == '' then
    return st.prefix .. 'l:', st.prefix .. 'pri'
  end
  local base = st.prefix .. 'n:' .. lane .. ':'
  return base .. 'l:', base .. 'pri'
end

local function lanes_in_use(st)
  if st.laned == nil then
    st.laned = redis.call('EXISTS', st.prefix .. 'lanes') == 1
  end
  return st.laned
end

-- lane_joined(st, lane): a lane got a task: it takes turns from now on (and the tasks
-- without a lane, if any wait, take theirs too once the first lane appears).
local function lane_joined(st, lane)
  local ring = st.prefix .. 'lanes'
  if lane == '' and not lanes_in_use(st) then
    return
  end
  local turn = tonumber(redis.call('GET', st.prefix .. 'turn')) or 0
  if lane ~= '' and not lanes_in_use(st) then
    st.laned = true
    if redis.call('EXISTS', st.prefix .. 'pri') == 1 then
      redis.call('ZADD', ring, 'NX', turn, '')
    end
  end
  redis.call('ZADD', ring, 'NX', turn, lane)
end

local function pending_line_up(st, id, priority, front, lane)
  lane = lane or ''
  local lists, priorities = line_keys(st, lane)
  local name = priority_name(priority)
  if redis.call(front and 'LPUSH' or 'RPUSH', lists .. name, id) == 1 then
    redis.call('ZADD', priorities, -priority, name)
  end
  lane_joined(st, lane)
end

-- pending_add(st, id, record): make a new task pending, at the back of its priority;
-- false (and nothing written) when the id has a pending record already.
local function pending_add(st, id, record)
  if not store_add(st, id, cmsgpack.pack(record)) then
    return false
  end
  pending_line_up(st, id, record[2], false, record_lane(record))
  return true
end

-- pending_push(st, id, record, front): make a task pending, at the back of its priority
-- (at the front when `front`: a task that goes back to where it was taken from).
local function pending_push(st, id, record, front)
  store_set(st, id, cmsgpack.pack(record))
  pending_line_up(st, id, record[2], front, record_lane(record))
end

-- lane_emptied(st, lane, priorities): drop a lane from the turns once it has no task.
local function lane_emptied(st, lane, priorities)
  if redis.call('EXISTS', priorities) == 0 and lanes_in_use(st) then
    redis.call('ZREM', st.prefix .. 'lanes', lane)
    if redis.call('EXISTS', st.prefix .. 'lanes') == 0 then
      st.laned = false
      redis.call('DEL', st.prefix .. 'turn')
    end
  end
end

-- pending_forget(st, id, priority, lane): drop a task's list entry (priority nil:
-- unknown, and the entry is left to be skipped).
local function pending_forget(st, id, priority, lane)
  if priority then
    lane = lane or ''
    local lists, priorities = line_keys(st, lane)
    local name = priority_name(priority)
    local list = lists .. name
    if redis.call('LLEN', list) <= PENDING_LREM_MAX then
      redis.call('LREM', list, 1, id)
      if redis.call('EXISTS', list) == 0 then
        redis.call('ZREM', priorities, name)
        lane_emptied(st, lane, priorities)
      end
      return
    end
  end
  redis.call('HINCRBY', st.prefix .. 'gone', id, 1)
end

-- pending_remove(st, id, record): a pending task leaves (record nil: it is unreadable).
local function pending_remove(st, id, record)
  store_remove(st, id)
  pending_forget(st, id, record and record[2], record_lane(record))
end

-- skip_gone(st, id): whether a list entry of `id` was left behind by a removal.
local function skip_gone(st, id)
  local gone = st.prefix .. 'gone'
  local left = tonumber(redis.call('HGET', gone, id) or '0') or 0
  if left <= 0 then
    return false
  end
  if left == 1 then
    redis.call('HDEL', gone, id)
  else
    redis.call('HSET', gone, id, left - 1)
  end
  return true
end

-- store_recount(st): after the lists ran out while the meta still counts records (the
-- store was changed behind Tickr's back), count the records again and put any that lost
-- their list entry back in line, so that none is stranded.  Bounded to stores of at most
-- PENDING_RECOUNT_MAX buckets.
local PENDING_RECOUNT_MAX = 4096
local function store_recount(st)
  local buckets = st.size + st.s
  if buckets > PENDING_RECOUNT_MAX then
    return
  end
  local found = 0
  for bucket = 0, buckets - 1 do
    local entries = redis.pcall('HGETALL', st.prefix .. 'b:' .. bucket)
    if entries.err == nil then
      for i = 1, #entries, 2 do
        local record = record_read(entries[i + 1])
        pending_line_up(st, entries[i], record and record[2] or 0, false, record_lane(record))
        found = found + 1
      end
    end
  end
  st.n, st.changed = found, true
  if found == 0 then
    st.k, st.s, st.size = 0, 0, 1
  end
end

-- line_take(st, lane, wanted, busy, recount): take up to `wanted` tasks from the front
-- of one lane's lists, highest priority first (see pending_take); `recount` allows a
-- recount when the lists ran out while records remain.
local function line_take(st, lane, wanted, busy, recount)
  local taken, skipped = {}, 0
  local lists, priorities = line_keys(st, lane)
  while #taken < wanted and skipped < PENDING_SKIP_MAX do
    local head = redis.call('ZRANGE', priorities, 0, 0)[1]
    if not head and recount and st.n > 0 and not st.recounted then
      st.recounted = true
      store_recount(st)
      head = redis.call('ZRANGE', priorities, 0, 0)[1]
    end
    if not head then
      return taken, true
    end
    local asked = wanted - #taken
    local ids = redis.call('LPOP', lists .. head, asked) or {}
    if #ids < asked then
      redis.call('ZREM', priorities, head)
    end
    for _, id in ipairs(ids) do
      local raw, failure, bucket = store_get(st, id)
      if failure then
        taken[#taken + 1] = {id, false, failure}
      elseif raw then
        local record, problem = record_read(raw)
        if record and (priority_name(record[2]) ~= head or record_lane(record) ~= lane) then
          skip_gone(st, id)  -- its live entry is in the list of its priority and lane
          skipped = skipped + 1
        else
          store_remove(st, id, bucket)
          taken[#taken + 1] = {id, record or false, problem}
        end
      elseif skip_gone(st, id) or busy(id) then
        skipped = skipped + 1
      else
        taken[#taken + 1] = {id, false, nil}
      end
    end
  end
  return taken, false
end

-- pending_take(st, wanted, busy): take up to `wanted` tasks, highest priority first and
-- FIFO among equals, the lanes (if any) round-robin.  `busy(id)` says whether an id
-- without a record lives in another state.  Returns a list of {id, record or false,
-- problem}: record false and problem nil for a task whose record vanished; and whether
-- the lists ran out.
local function pending_take(st, wanted, busy)
  if not lanes_in_use(st) then
    return line_take(st, '', wanted, busy, true)
  end
  local ring = st.prefix .. 'lanes'
  local taken, idle_turns = {}, 0
  while #taken < wanted and idle_turns < PENDING_SKIP_MAX do
    local lane = redis.call('ZRANGE', ring, 0, 0)[1]
    if not lane then
      st.laned = false
      redis.call('DEL', st.prefix .. 'turn')
      local rest, ran_out = line_take(st, '', wanted - #taken, busy, true)
      for _, entry in ipairs(rest) do
        taken[#taken + 1] = entry
      end
      return taken, ran_out
    end
    local got, ran_out = line_take(st, lane, 1, busy, false)
    for _, entry in ipairs(got) do
      taken[#taken + 1] = entry
    end
    if #got == 0 then
      idle_turns = idle_turns + 1
    end
    local _, priorities = line_keys(st, lane)
    if ran_out or redis.call('EXISTS', priorities) == 0 then
      redis.call('ZREM', ring, lane)
    else
      redis.call('ZADD', ring, 'XX', redis.call('INCR', st.prefix .. 'turn'), lane)
    end
  end
  return taken, false
end
