-- group_read.lua: how many entries of a shard's stream the consumer group
-- has read (docq_store_group_read), from which every PENDING task's queue
-- position follows (docq_queue_position).
--   KEYS[1] stream     P:{sN}:tasks
--   ARGV[1] group      DOCQ_GROUP
-- Returns docq_group_read's count, or -1 when it is not known (no stream or
-- group yet). Reads only.
-- lib: xinfo
local read = docq_group_read(KEYS[1], ARGV[1])
if read then return read end
return -1
