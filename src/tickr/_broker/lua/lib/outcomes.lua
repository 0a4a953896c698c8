-- The ends of an attempt, shared by finish.lua (the server reports) and recover.lua (a
-- lease ran out).  `key` is the task's hash, `id` its id, `now` the time in ms.

-- retry_task: active -> retry, due at `due`; counts the retry.
local function retry_task(key, retry_key, id, due, err, now)
  redis.call('HSET', key, 'state', 'retry', 'err', err, 'due', due, 'failed_at', now)
  redis.call('HINCRBY', key, 'retried', 1)
  redis.call('HDEL', key, 'owner')
  redis.call('ZADD', retry_key, due, id)
end

-- archive_task: active -> archived, with its last error.
local function archive_task(key, archived_key, id, err, now)
  redis.call('HSET', key, 'state', 'archived', 'err', err, 'failed_at', now)
  redis.call('HDEL', key, 'owner', 'cancel')
  redis.call('ZADD', archived_key, now, id)
end

-- task_ended: after a final outcome, free the unique lock and tell a waiting client.
local function task_ended(unique_prefix, digest, id, waited_on, done_channel)
  release_unique(unique_prefix, digest, id)
  if waited_on then
    redis.call('PUBLISH', done_channel, id)
  end
end

-- count_attempts: add to the all-time, today's and this minute's processed and failed
-- counters.  counters = {processed, failed, processed today, failed today, this hour's
-- minute counters}; now in ms.  The minute counters of an hour are one hash (fields
-- p<minute> and f<minute>, minute 0-59 of the hour; keys.py QueueKeys.minutes) that
-- lives until 25 hours after the hour began.  A damaged counter (another type, or text
-- that is no count) loses this batch's counts, never the outcomes.
local function count_attempts(counters, processed, failed, day_ttl, now)
  if processed == 0 and failed == 0 then
    return
  end
  local minute = math.floor(now / 60000) % 60
  if processed > 0 then
    redis.pcall('INCRBY', counters[1], processed)
    redis.pcall('INCRBY', counters[3], processed)
    redis.call('EXPIRE', counters[3], day_ttl)
    redis.pcall('HINCRBY', counters[5], 'p' .. minute, processed)
  end
  if failed > 0 then
    redis.pcall('INCRBY', counters[2], failed)
    redis.pcall('INCRBY', counters[4], failed)
    redis.call('EXPIRE', counters[4], day_ttl)
    redis.pcall('HINCRBY', counters[5], 'f' .. minute, failed)
  end
  redis.call('PEXPIREAT', counters[5], (math.floor(now / 3600000) + 25) * 3600000)
end
