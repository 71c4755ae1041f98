-- finish.lua: write a task's outcome (docq_store_finish), fenced by the
-- attempt: only while the task is STARTED by that same attempt. Sets state,
-- the result or error field, finished_at, finished_by = attempt and the
-- record's expiry (docq_ended: its request key's too; a SUCCESS also
-- clears the error an earlier attempt left), then acknowledges and deletes the stream entry. Only a write is a
-- change (version + 1, published). A stale attempt (the task was taken
-- over) writes nothing; the entry is still acknowledged when the task is
-- terminal (a cancelled one included: after a cancel the outcome is
-- dropped) or gone, and left to its newer owner while it is STARTED or
-- PENDING.
--   KEYS[1] record     P:{sN}:task:<task_id>
--   KEYS[2] stream     P:{sN}:tasks
--   ARGV[1] group      DOCQ_GROUP
--   ARGV[2] entry_id   the task's entry in stream
--   ARGV[3] attempt    the worker's fencing token
--   ARGV[4] state      SUCCESS or FAILURE
--   ARGV[5] field      result or error
--   ARGV[6] value
--   ARGV[7] ttl_s      DOCQ_RESULT_TTL_S
-- Returns 1 when written, 0 when refused. The same call sent again (after a
-- lost reply) finds its own outcome (finished_by) and returns 1 again,
-- changing nothing.
-- lib: publish now ended
local record, stream = KEYS[1], KEYS[2]
local group, entry_id, attempt = ARGV[1], ARGV[2], ARGV[3]
local state, field, value, ttl = ARGV[4], ARGV[5], ARGV[6], ARGV[7]

local cur = redis.call('HMGET', record, 'state', 'attempts', 'finished_by')
if cur[1] == 'STARTED' and cur[2] == attempt then
  local now = docq_now()
  redis.call('HSET', record, 'state', state, field, value,
    'finished_at', string.format('%d', now), 'finished_by', attempt)
  docq_ended(record, now, ttl)
  if state == 'SUCCESS' then redis.call('HDEL', record, 'error') end
  docq_changed(record)
elseif cur[1] == 'STARTED' or cur[1] == 'PENDING' then
  return 0
end
redis.call('XACK', stream, group, entry_id)
redis.call('XDEL', stream, entry_id)
if cur[1] == 'STARTED' or cur[3] == attempt then return 1 end
return 0
