-- prune.lua: delete a consumer group's idle consumers (docq_store_prune):
-- those that hold no pending entry and are either the named consumer (a
-- worker stopping cleanly) or idle for idle_ms or more (XGROUP
-- DELCONSUMER). A consumer with pending entries is never deleted, so
-- nothing is lost.
--   KEYS[1] stream     P:{sN}:tasks
--   ARGV[1] group      DOCQ_GROUP
--   ARGV[2] consumer   '': none
--   ARGV[3] idle_ms
-- Returns how many consumers were deleted; 0 when the stream or group does
-- not exist.
-- lib: hash
local stream = KEYS[1]
local group, consumer, idle_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])

local cs = redis.pcall('XINFO', 'CONSUMERS', stream, group)
if cs['err'] then return 0 end
local n = 0
for _, c in ipairs(cs) do
  local h = docq_hash(c)
  if h['pending'] == 0 and (h['name'] == consumer or h['idle'] >= idle_ms) then
    redis.call('XGROUP', 'DELCONSUMER', stream, group, h['name'])
    n = n + 1
  end
end
return n
