-- read.lua: read a task with its queue position (docq_store_get, and
-- GetStatus when no read limit applies or the limit is checked apart).
--   KEYS[1] record     P:{sN}:task:<task_id>
--   KEYS[2] stream     P:{sN}:tasks
--   ARGV[1] group      DOCQ_GROUP
-- Returns docq_read_task's {fields, position}: fields empty when there is
-- no record; position 0 unless the task is PENDING and its place is known.
-- Reads only.
-- lib: read_task
return docq_read_task(KEYS[1], KEYS[2], ARGV[1])
