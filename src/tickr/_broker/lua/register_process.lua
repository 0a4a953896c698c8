-- Record (or refresh) a running process (a server, a scheduler) in one of the namespace's
-- registries, with an expiry.
-- KEYS[1] the process's record    KEYS[2] the registry (zset: process id -> expiry ms)
-- KEYS[3] the namespace's queue names (set)
-- ARGV[1] process id    ARGV[2] record (msgpack)    ARGV[3] now (ms)    ARGV[4] ttl (ms)
-- ARGV[5..] the queues the process uses: recorded again, so that a queue deleted by an
--   operator while still in use is listed again
-- Returns the number of processes registered, expired ones removed first.
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
if #ARGV > 4 then
  redis.call('SADD', KEYS[3], unpack(ARGV, 5))
end
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
return redis.call('ZCARD', KEYS[2])
