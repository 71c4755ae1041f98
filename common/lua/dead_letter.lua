-- dead_letter.lua: move a poison task to its shard's dead-letter stream
-- (docq_store_dead_letter), once start.lua found it delivered more than
-- DOCQ_MAX_DELIVERIES times. Appends {task_id, doc_id, entry_id,
-- deliveries, dead_at} to the dead-letter stream (trimmed to about maxlen
-- entries, XADD MAXLEN ~), ends the task as FAILURE with an error saying
-- so, sets the record's expiry (docq_ended), and acknowledges and deletes
-- the queue entry. The deliveries are counted as start.lua counts them. A
-- change: version + 1, published.
--   KEYS[1] record     P:{sN}:task:<task_id>
--   KEYS[2] stream     P:{sN}:tasks
--   KEYS[3] dead       P:{sN}:<DOCQ_DEAD_STREAM>
--   ARGV[1] group      DOCQ_GROUP
--   ARGV[2] entry_id   the task's entry in stream
--   ARGV[3] task_id
--   ARGV[4] consumer   the worker's consumer name
--   ARGV[5] ttl_s      DOCQ_RESULT_TTL_S
--   ARGV[6] maxlen     DOCQ_DEAD_MAXLEN
-- Returns {deliveries} when dead-lettered, {-1} when the record is missing,
-- {-2} when the task is terminal (SUCCESS, FAILURE or CANCELLED: any state
-- but PENDING and STARTED; so this script sent again after a lost reply, or
-- after a cancel, changes nothing).
-- lib: publish now deliveries ended
local record, stream, dead = KEYS[1], KEYS[2], KEYS[3]
local group, entry_id, task_id, consumer = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, maxlen = ARGV[5], ARGV[6]

local cur = redis.call('HMGET', record, 'state', 'doc_id', 'deliveries', 'consumer')
if not cur[1] then return {-1} end
if cur[1] ~= 'PENDING' and cur[1] ~= 'STARTED' then return {-2} end
local n = docq_deliveries(cur[3], cur[4], consumer)

local now = docq_now()
redis.call('XADD', dead, 'MAXLEN', '~', maxlen, '*', 'task_id', task_id,
  'doc_id', cur[2] or '', 'entry_id', entry_id, 'deliveries', n,
  'dead_at', string.format('%d', now))
redis.call('HSET', record, 'state', 'FAILURE', 'deliveries', n,
  'finished_at', string.format('%d', now), 'error', 'moved to the dead-letter stream ' ..
  dead .. ' after ' .. n .. ' deliveries: no worker finished it (each crashed, was ' ..
  'killed or lost it)')
docq_ended(record, now, ttl)
docq_changed(record)
redis.call('XACK', stream, group, entry_id)
redis.call('XDEL', stream, entry_id)
return {n}
