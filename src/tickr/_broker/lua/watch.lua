-- Read a task's outcome and mark that somebody waits on it, so that finishing the task
-- publishes its id on the queue's done channel.
-- KEYS[1] task hash
-- Returns nil when the task does not exist, else {state, result, error}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
redis.call('HSET', KEYS[1], 'w', '1')
return redis.call('HMGET', KEYS[1], 'state', 'result', 'err')
