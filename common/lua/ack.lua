-- ack.lua: acknowledge and delete a stream entry without touching any
-- record (docq_store_ack), for entries whose task is gone or finished.
--   KEYS[1] stream     P:{sN}:tasks
--   ARGV[1] group      DOCQ_GROUP
--   ARGV[2] entry_id
-- Returns how many entries were deleted (XDEL): 1, or 0 when it was gone.
local stream = KEYS[1]
local group, entry_id = ARGV[1], ARGV[2]

redis.call('XACK', stream, group, entry_id)
return redis.call('XDEL', stream, entry_id)
