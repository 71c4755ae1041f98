-- cancel.lua: CancelTask in one step (docq_store_cancel_queue): the
-- caller's read limit (as status.lua checks it; a refused cancel changes
-- nothing), then the cancel. Only a PENDING or STARTED task changes: state
-- CANCELLED, finished_at = now, error = reason and the record's expiry, a
-- change (version + 1, published). A STARTED task's id is also appended to
-- the shard's cancels stream (XADD MAXLEN ~ maxlen), which the worker
-- running it reads (worker/cancels.c) to abort its AI call; a PENDING
-- task's entry stays queued and is only acknowledged by the worker that
-- receives it (start.lua finds the task terminal). A task that has ended
-- (SUCCESS, FAILURE, CANCELLED) is left as it is. A task owned by another
-- caller is answered as a missing one and left as it is.
--   KEYS[1] limit_key  P:{sN}:rate-read:<caller> (common/ratelimit.h), in
--                      the task's shard (untouched when limit is 0)
--   KEYS[2] record     P:{sN}:task:<task_id>
--   KEYS[3] stream     P:{sN}:tasks
--   KEYS[4] cancels    P:{sN}:cancels
--   ARGV[1] limit      0: none (the limit was checked apart, or there is none)
--   ARGV[2] window_ms
--   ARGV[3] member     a random id standing for this call (sent twice, it
--                      counts once)
--   ARGV[4] group      DOCQ_GROUP
--   ARGV[5] owner      the caller id an authenticated caller must own the
--                      task as; '': callers are not authenticated (any
--                      caller may cancel any task)
--   ARGV[6] ttl_s      DOCQ_RESULT_TTL_S
--   ARGV[7] maxlen     about how many entries the cancels stream keeps
--   ARGV[8] reason     the error the cancelled task shows
--   ARGV[9] task_id
-- Returns status.lua's reply: {{ok, now, n, wait}} when the limit refuses,
-- else {{ok, now, n, wait}, {fields, position}} with the record as the
-- cancel left it (fields empty: no such record, or another caller's). Sent
-- again after a lost reply it finds the task CANCELLED and returns it,
-- changing nothing, and counts the call once.
-- lib: rate read_task now publish ended
local limit_key, record, stream, cancels = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local limit, window, member, group = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local owner, ttl, maxlen, reason, task_id = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local now = docq_now()

local ok, n, wait = docq_rate(limit_key, limit, window, now, member, true)
local rate = {ok and 1 or 0, now, n, wait}
if not ok then return {rate} end

local cur = redis.call('HMGET', record, 'state', 'owner')
if not cur[1] or (owner ~= '' and cur[2] ~= owner) then return {rate, {{}, 0}} end
if cur[1] == 'PENDING' or cur[1] == 'STARTED' then
  redis.call('HSET', record, 'state', 'CANCELLED', 'finished_at', string.format('%d', now),
    'error', reason)
  docq_ended(record, now, ttl)
  docq_changed(record)
  if cur[1] == 'STARTED' then
    redis.call('XADD', cancels, 'MAXLEN', '~', maxlen, '*', 'task_id', task_id)
  end
end
return {rate, docq_read_task(record, stream, group)}
