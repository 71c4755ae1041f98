-- status.lua: GetStatus in one step when the caller's read-limit key and
-- the task share a shard (docq_store_read_queue): the read limit's check
-- (as ratelimit.lua), then, when admitted, read.lua's read. A refused read
-- reads nothing. Sent twice, it counts the read once (same member).
--   KEYS[1] limit_key  P:{sN}:rate-read:<caller> (common/ratelimit.h)
--   KEYS[2] record     P:{sN}:task:<task_id>
--   KEYS[3] stream     P:{sN}:tasks
--   ARGV[1] limit
--   ARGV[2] window_ms
--   ARGV[3] member     a random id standing for this read
--   ARGV[4] group      DOCQ_GROUP
--   ARGV[5] ttl_s      DOCQ_RESULT_TTL_S, for a task that expires now
-- Returns {{ok, now, n, wait}} when the limit refuses, else
-- {{ok, now, n, wait}, {fields, position}}: ratelimit.lua's reply, then
-- read.lua's (which ends a PENDING task past its queue deadline).
-- lib: rate read_task now
local limit_key, record, stream = KEYS[1], KEYS[2], KEYS[3]
local limit, window, member, group, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local now = docq_now()

local ok, n, wait = docq_rate(limit_key, limit, window, now, member, true)
local rate = {ok and 1 or 0, now, n, wait}
if not ok then return {rate} end
return {rate, docq_read_task(record, stream, group, ttl)}
