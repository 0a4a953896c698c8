-- trim_completed(completed_key, now): forget completed tasks whose retention ran out.
-- Their hashes expire by themselves, and an id enqueued again since then names a new
-- task, which stays: only the set's entries go, at most 1,000 per call, O(log N) each.
local function trim_completed(completed_key, now)
  local bound = now
  local last = redis.call('ZRANGEBYSCORE', completed_key, '-inf', now, 'WITHSCORES', 'LIMIT', 999, 1)
  if last[2] then
    bound = last[2]
  end
  redis.call('ZREMRANGEBYSCORE', completed_key, '-inf', bound)
end
