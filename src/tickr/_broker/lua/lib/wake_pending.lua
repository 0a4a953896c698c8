-- wake_pending(idle_key, events_channel): tell idle servers that the queue has work.
-- The idle flag is set by a dequeue that found too few tasks; only the first write after
-- that publishes, so busy queues cost no publish at all.
local function wake_pending(idle_key, events_channel)
  if redis.call('DEL', idle_key) == 1 then
    redis.call('PUBLISH', events_channel, 'p')
  end
end
