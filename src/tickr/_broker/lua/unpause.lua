-- Resume serving a queue and wake the servers that found it paused.
-- KEYS[1] paused flag    KEYS[2] idle flag
-- ARGV[1] events channel
-- Returns 1 if the queue was paused, else 0.
--@include wake_pending

local was_paused = redis.call('DEL', KEYS[1])
wake_pending(KEYS[2], ARGV[1])
return was_paused
