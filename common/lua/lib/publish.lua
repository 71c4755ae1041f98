-- lib/publish.lua: publishing the changes of a task record, for a script
-- that changes one.
--   docq_publish_fields(rkey, f) sends the record at rkey
--     ("P:{sN}:task:<id>") that the script has just written whole as the
--     field/value list f (strings), without reading it back, on its shard's
--     channel "P:{sN}:events": the task id, then each field and value, each
--     as a netstring "<len>:<bytes>," (see common/event.h).
--   docq_publish(rkey) sends the same for the record as it is now (HGETALL).
--   docq_changed(rkey) adds 1 to the record's version, then publishes it.
-- Every script that changes a record must end its change with docq_changed
-- (or set the version itself and publish), in the same script, so that
-- watchers see each version exactly once and in order.
local function docq_publish_fields(rkey, f)
  local base, id = string.match(rkey, '^(.*):task:(.*)$')
  local p = {#id, ':', id, ','}
  for i = 1, #f do p[#p + 1] = #f[i] .. ':' .. f[i] .. ',' end
  redis.call('PUBLISH', base .. ':events', table.concat(p))
end

local function docq_publish(rkey)
  docq_publish_fields(rkey, redis.call('HGETALL', rkey))
end

local function docq_changed(rkey)
  redis.call('HINCRBY', rkey, 'version', 1)
  docq_publish(rkey)
end
