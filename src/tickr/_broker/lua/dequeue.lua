-- Take up to N pending tasks (highest priority first, FIFO among equals) and make them
-- active under a lease held by one server: each gets its task hash, made from its pending
-- record (lib/pending_store.lua).
-- KEYS[1] pending store meta    KEYS[2] active zset    KEYS[3] paused flag    KEYS[4] idle flag
-- KEYS[5] archived zset    KEYS[6] limits hash    KEYS[7] rate limiter's arrival time
-- KEYS[8] servers waiting for a concurrency slot (zset: server -> when its wait lapses,
-- the lease expiry of its latest dequeue, so that a dead server's wait lapses too)
-- ARGV[1] task key prefix    ARGV[2] N    ARGV[3] lease expiry (ms)    ARGV[4] owner (server id)
-- ARGV[5] now (ms)    ARGV[6] pending store prefix
-- Each task records the expiry as `dq`: it names this call for reclaim.lua.
-- A task whose record is damaged is archived with the problem as its error, and another
-- pending task is taken in its place.
-- Limits (the limits hash, set by the Inspector) take fewer than N:
-- - concurrency `conc`: no more tasks than `conc` less the live leases (active tasks whose
--   lease expiry is after now: a dead server's slots free when its leases expire);
-- - rate `rate` per `period` ms with `burst`: a GCRA on the theoretical arrival time TAT
--   (KEYS[7]); times are whole ms, so a start at `now` counts anywhere within that ms: a
--   task may start when TAT < now + 1 + (burst - 1) * period / rate, and each start moves
--   TAT on by period / rate, so in any window of t ms at most burst + rate * t / period
--   tasks start (t >= 1).
-- Returns {taken, rejected, hold}: taken is a flat array of (id, msg, retried, ready) per
-- task taken, msg nil when the task's record vanished (the server archives such a task
-- with an error), ready the due time (ms) it became runnable at, 0 when that was its
-- enqueue; rejected a flat array of (id, error) per damaged task archived; hold 0 when no
-- limit held tasks back, else how long until this queue may give more: > 0 the ms until
-- the rate allows the next start, < 0 a concurrency limit is full and -hold is the ms
-- until the earliest live lease expires (a finished task wakes one waiting server before
-- that: it is recorded in KEYS[8]).
-- Sets the idle flag when the queue had fewer than N tasks for want of tasks, or is
-- paused, so that the next enqueue wakes the idle servers.
--@include pending_store
--@include task_record

if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('SET', KEYS[4], '1')
  return {{}, {}, 0}
end
local now = tonumber(ARGV[5])
local wanted = tonumber(ARGV[2])
local prefix = ARGV[1]
local owner = ARGV[4]

local function lease_wait()
  local first = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return -math.max(1, math.ceil((tonumber(first[2]) or (now + 1000)) - now))
end

local limits = redis.call('HMGET', KEYS[6], 'rate', 'period', 'burst', 'conc')
local rate, period, burst, conc = tonumber(limits[1]), tonumber(limits[2]), tonumber(limits[3]),
  tonumber(limits[4])
local allowed, held_by = wanted, nil
if conc then
  local slots = conc - redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
  if slots <= 0 then
    redis.call('ZADD', KEYS[8], ARGV[3], owner)
    return {{}, {}, lease_wait()}
  end
  redis.call('ZREM', KEYS[8], owner)
  if slots < allowed then
    allowed, held_by = slots, 'conc'
  end
end
local interval, tolerance, arrival
if rate and period then
  interval = period / rate
  tolerance = ((burst or 1) - 1) * interval
  arrival = math.max(tonumber(redis.call('GET', KEYS[7])) or 0, now)
  -- Starts whose arrival falls within this ms: the 1e-9 keeps one due at the very end of
  -- the ms out (it belongs to the next) despite rounding.
  local may = math.floor((now + 1 + tolerance - arrival) / interval - 1e-9) + 1
  if may <= 0 then
    return {{}, {}, math.max(1, math.floor(arrival - tolerance - now))}
  end
  if may < allowed then
    allowed, held_by = may, 'rate'
  end
end
local taken, rejected = {}, {}
local st = store_open(ARGV[6])
local function busy(id)
  return redis.call('EXISTS', prefix .. id) == 1
end
local ran_out = false
while #taken / 4 < allowed and #rejected < 2000 and not ran_out do
  local entries
  entries, ran_out = pending_take(st, allowed - #taken / 4, busy)
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
      local written = redis.pcall('HSET', key, 'state', 'active', 'owner', owner, 'dq', ARGV[3],
        unpack(fields))
      if type(written) == 'table' then  -- a stray key of another type sits on its name
        redis.call('DEL', key)
        redis.call('HSET', key, 'state', 'active', 'owner', owner, 'dq', ARGV[3], unpack(fields))
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
local got = #taken / 4
if arrival and got > 0 then
  local next_arrival = arrival + got * interval
  redis.call('SET', KEYS[7], string.format('%.4f', next_arrival), 'PX',
    math.ceil(next_arrival - now) + 1000)
end
local hold = 0
if got < allowed then
  redis.call('SET', KEYS[4], '1')
elseif held_by == 'rate' then
  hold = math.max(1, math.floor(arrival + got * interval - tolerance - now))
elseif held_by == 'conc' then
  redis.call('ZADD', KEYS[8], ARGV[3], owner)
  hold = lease_wait()
end
return {taken, rejected, hold}
