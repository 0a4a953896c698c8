-- A page of the pending tasks in run order (lib/pending_store.lua), the tasks without a
-- lane first, then each lane's in the order of their turns; nothing is changed.
-- KEYS[1] pending store meta
-- ARGV[1] pending store prefix    ARGV[2] offset    ARGV[3] count
-- The offset counts list entries, the few left behind by removals included; those are
-- not shown, so that a page may hold fewer tasks than asked.
-- Returns a flat array of (id, raw record or false when its record vanished).
--@include pending_store

local st = store_open(ARGV[1])
local offset, count = tonumber(ARGV[2]), tonumber(ARGV[3])
local page, seen = {}, {}
local lanes = {''}
for _, lane in ipairs(redis.call('ZRANGE', st.prefix .. 'lanes', 0, -1)) do
  if lane ~= '' then
    lanes[#lanes + 1] = lane
  end
end
for _, lane in ipairs(lanes) do
  local lists, priorities = line_keys(st, lane)
  for _, name in ipairs(redis.call('ZRANGE', priorities, 0, -1)) do
    if count <= 0 then
      break
    end
    local list = lists .. name
    local length = redis.call('LLEN', list)
    if offset >= length then
      offset = offset - length
    else
      local ids = redis.call('LRANGE', list, offset, offset + count - 1)
      offset = 0
      count = count - #ids
      for _, id in ipairs(ids) do
        local raw = store_get(st, id)
        local shown = not seen[id]
        if raw then
          local record = record_read(raw)
          shown = shown and not (record and (priority_name(record[2]) ~= name
            or record_lane(record) ~= lane))
        else
          shown = shown and not redis.call('HGET', st.prefix .. 'gone', id)
        end
        if shown then
          seen[id] = true
          page[#page + 1] = id
          page[#page + 1] = raw or false
        end
      end
    end
  end
end
return page
