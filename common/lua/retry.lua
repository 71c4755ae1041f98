-- retry.lua: record a transient AI failure of an attempt (docq_store_retry)
-- while the task stays STARTED: failures + 1 (the retry budget) and error =
-- the failure, so the task shows its last error while it waits for its
-- retry. Fenced: only while the task is STARTED by that attempt. A change
-- (version + 1, published). The failure is recorded once per attempt
-- (failed_attempt): sent again, it returns the same count and changes
-- nothing.
--   KEYS[1] record     P:{sN}:task:<task_id>
--   ARGV[1] attempt    the worker's fencing token
--   ARGV[2] error
-- Returns the new failure count, or -1 when the task is not STARTED by that
-- attempt (taken over, or ended: finished or CANCELLED; nothing written).
-- lib: publish
local record = KEYS[1]
local attempt, err = ARGV[1], ARGV[2]

local cur = redis.call('HMGET', record, 'state', 'attempts', 'failed_attempt', 'failures')
if cur[1] ~= 'STARTED' or cur[2] ~= attempt then return -1 end
if cur[3] == attempt then return tonumber(cur[4] or '0') end
redis.call('HSET', record, 'error', err, 'failed_attempt', attempt)
local f = redis.call('HINCRBY', record, 'failures', 1)
docq_changed(record)
return f
