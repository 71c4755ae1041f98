-- restart.lua: begin the retry of an attempt that failed transiently
-- (docq_store_restart): attempts + 1 and started_at = now, only while the
-- task is STARTED by that attempt. A change (version + 1, published). The
-- restart records the attempt it ended (restarted_from): sent again, it
-- finds the attempt after it current and returns it, changing nothing
-- (attempt numbers only grow, so no start by another worker can look so).
--   KEYS[1] record     P:{sN}:task:<task_id>
--   ARGV[1] attempt    the worker's fencing token
-- Returns the new attempt (the new fencing token), or -1 when the task
-- moved on (taken over, or terminal: CANCELLED while it waited, too;
-- nothing written).
-- lib: publish now
local record = KEYS[1]
local attempt = ARGV[1]

local cur = redis.call('HMGET', record, 'state', 'attempts', 'restarted_from')
if cur[1] ~= 'STARTED' then return -1 end
if cur[3] == attempt and tonumber(cur[2]) == tonumber(attempt) + 1 then return tonumber(cur[2]) end
if cur[2] ~= attempt then return -1 end
local now = docq_now()
redis.call('HSET', record, 'started_at', string.format('%d', now), 'restarted_from', attempt)
local a = redis.call('HINCRBY', record, 'attempts', 1)
docq_changed(record)
return a
