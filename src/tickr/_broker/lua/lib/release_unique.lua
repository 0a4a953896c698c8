-- release_unique(unique_prefix, digest, id): drop the unique lock if this task holds it.
local function release_unique(unique_prefix, digest, id)
  if digest then
    local unique_key = unique_prefix .. digest
    if redis.call('GET', unique_key) == id then
      redis.call('DEL', unique_key)
    end
  end
end
