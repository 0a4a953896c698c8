-- Enqueue one tick of a periodic task, unless a scheduler already did: the entry's last
-- tick is kept in Redis, and only a tick later than it is claimed.  Any number of
-- schedulers may call this for the same tick; exactly one enqueues it.
-- KEYS[1] pending store meta    KEYS[2] scheduled zset    KEYS[3] idle flag
-- KEYS[4] the entry's last tick    KEYS[5] the entry's history (list)
-- KEYS[6] waiters zset    KEYS[7] active zset    KEYS[8] paused flag
-- ARGV[1] task key prefix    ARGV[2] unique key prefix    ARGV[3] events channel
-- ARGV[4] the tick (ms)    ARGV[5] now (ms)    ARGV[6] history length kept
-- ARGV[7] lifetime of the entry's state (ms)    ARGV[8] the task, msgpack-encoded (one item
--   as in enqueue.lua)    ARGV[9] inbox key prefix    ARGV[10] real time (ms), for leases
-- ARGV[11] inbox lifetime (ms)    ARGV[12] lease lengths a hand-off is recorded for
-- ARGV[13] pending store prefix (lib/pending_store.lua)
-- Returns {claimed (1/0), outcome (as enqueue.lua; '' when not claimed), last tick (ms)}.
--@include wake_pending
--@include zset_head
--@include pending_store
--@include enqueue_task

local tick = tonumber(ARGV[4])
local last = tonumber(redis.call('GET', KEYS[4]) or '-1')
if last >= tick then
  return {0, '', last}
end
redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[7])
local item = cmsgpack.unpack(ARGV[8])
local scheduled_head = zset_head(KEYS[2])
local st = store_open(ARGV[13])
local handoff = nil
if st.n == 0 and handoff_open(KEYS[8]) then
  handoff = {waiters = KEYS[6], active = KEYS[7], inbox_prefix = ARGV[9], now = tonumber(ARGV[10]),
    inbox_ttl = ARGV[11], handed_leases = tonumber(ARGV[12])}
end
local outcome, written, handed = enqueue_task(st, KEYS[2], ARGV[1], ARGV[2], item, handoff)
store_close(st)
if written and outcome == 1 and not handed then
  wake_pending(KEYS[3], ARGV[3])
elseif written and outcome == 2 and (scheduled_head == nil or item[4] < scheduled_head) then
  redis.call('PUBLISH', ARGV[3], 's')
end
redis.call('LPUSH', KEYS[5], cmsgpack.pack({tick, tonumber(ARGV[5]), item[1], outcome}))
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[6]) - 1)
redis.call('PEXPIRE', KEYS[5], ARGV[7])
return {1, outcome, tick}
