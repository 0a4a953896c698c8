-- Record (or refresh) a running server in the namespace's registry, with an expiry.
-- KEYS[1] the server's record    KEYS[2] the registry (zset: server id -> expiry ms)
-- ARGV[1] server id    ARGV[2] record (msgpack)    ARGV[3] now (ms)    ARGV[4] ttl (ms)
-- Returns the number of servers registered, expired ones removed first.
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
return redis.call('ZCARD', KEYS[2])
