-- lib/xinfo.lua: what a consumer group has read of a stream.
--   docq_entries_added(stream): XINFO STREAM's entries-added (how many
--     entries were ever added to the stream), or nil when Redis does not
--     say (before 7.0). The stream must exist.
--   docq_group_read(stream, group): how many entries of the stream the
--     consumer group has read (its entries-read; when Redis lost count, as
--     after some deletions, entries-added - lag), or nil when that is not
--     known (no stream, no such group, or neither number available). A
--     PENDING task whose entry was number seq of its stream is then at
--     position seq - read; docq_queue_position (store.h) computes the same.
-- lib: hash
local function docq_entries_added(stream)
  return docq_hash(redis.call('XINFO', 'STREAM', stream))['entries-added']
end

local function docq_group_read(stream, group)
  local groups = redis.pcall('XINFO', 'GROUPS', stream)
  if groups['err'] then return nil end
  for _, g in ipairs(groups) do
    local h = docq_hash(g)
    if h['name'] == group then
      if h['entries-read'] then return h['entries-read'] end
      if not h['lag'] then return nil end
      local added = docq_entries_added(stream)
      if added then return added - h['lag'] end
      return nil
    end
  end
  return nil
end
