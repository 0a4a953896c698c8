-- Extend the leases of tasks handed to a server whose event loop is blocked: they were
-- popped from its inbox into a BLPOP reply the loop has not read, so the server does not
-- know them yet and renew.lua cannot name them.  enqueue_task.lua records each hand-off
-- in a sorted set (score: when), kept for HANDED_WINDOW_LEASES lease lengths (keys.py).
-- KEYS[1] active zset    KEYS[2] the server's handed set
-- ARGV[1] task key prefix    ARGV[2] owner (server id)    ARGV[3] new lease expiry (ms)
-- ARGV[4] only hand-offs at or after this time (ms) are renewed; older entries go
-- Returns the number of leases extended.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
local renewed = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('TYPE', ARGV[1] .. id)['ok'] == 'hash'
      and redis.call('HGET', ARGV[1] .. id, 'owner') == ARGV[2]
      and redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[3], id)
    renewed = renewed + 1
  else
    redis.call('ZREM', KEYS[2], id)  -- done, or taken over by another server
  end
end
return renewed
