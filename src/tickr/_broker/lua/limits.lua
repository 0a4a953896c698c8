-- Set or clear a queue's flow-control limits, and tell every server.
-- KEYS[1] limits hash    KEYS[2] rate limiter's arrival time    KEYS[3] servers waiting
-- for a concurrency slot
-- ARGV[1] events channel    ARGV[2] "set" (then field, value, ...), "rate" or "conc"
-- Setting or clearing the rate forgets the arrival time (the new rate starts afresh, not
-- held back by a time the old one set); clearing the concurrency limit forgets the
-- waiting servers.  Publishes 'l': every server of the queue dequeues again at once, so
-- that a change holds within the second.  Returns 1.
local op = ARGV[2]
if op == 'set' then
  redis.call('HSET', KEYS[1], unpack(ARGV, 3))
  for i = 3, #ARGV, 2 do
    if ARGV[i] == 'rate' then
      redis.call('DEL', KEYS[2])
    end
  end
elseif op == 'rate' then
  redis.call('HDEL', KEYS[1], 'rate', 'period', 'burst', 'rate_lane')
  redis.call('DEL', KEYS[2])
else
  redis.call('HDEL', KEYS[1], 'conc', 'conc_lane')
  redis.call('DEL', KEYS[3])
end
redis.call('PUBLISH', ARGV[1], 'l')
return 1
