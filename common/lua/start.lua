-- start.lua: a worker has just received a task's entry (read or reclaimed)
-- (docq_store_start). Marks the task STARTED: attempts + 1, started_at =
-- now, consumer, and deliveries as docq_deliveries counts them (the
-- record's own count, not the group's XPENDING count, which every re-read of
-- a pending entry after a Redis outage raises). A start is a change:
-- version + 1, published. When the task has been delivered more than
-- max_deliveries times it writes nothing and says so: the worker then runs
-- dead_letter.lua. A PENDING task past its queue deadline (SubmitDoc's
-- queue_timeout) is not started either: it ends FAILURE "expired in queue
-- after N s" here (docq_expire: published, finished_at, the record's
-- expiry), and the worker only acknowledges its entry: no AI call.
--   KEYS[1] record          P:{sN}:task:<task_id>
--   ARGV[1] max_deliveries  DOCQ_MAX_DELIVERIES
--   ARGV[2] consumer        the worker's consumer name
--   ARGV[3] ttl_s           DOCQ_RESULT_TTL_S, for a task that expires now
-- Returns {attempt, failures, deliveries} when started, {-1} when the
-- record is missing, {-2} when the task is terminal (SUCCESS, FAILURE,
-- CANCELLED: any state but PENDING and STARTED; the worker then only
-- acknowledges the entry, so a task cancelled while PENDING never reaches
-- the AI), {-3, deliveries} when it is to be dead-lettered (nothing
-- written), {-4} when it has just expired (sent again, it then finds the
-- task terminal: {-2}).
-- lib: publish now deliveries hash expire
local record = KEYS[1]
local max_deliveries, consumer, ttl = tonumber(ARGV[1]), ARGV[2], ARGV[3]

local cur = redis.call('HMGET', record, 'state', 'failures', 'deliveries', 'consumer')
if not cur[1] then return {-1} end
if cur[1] ~= 'PENDING' and cur[1] ~= 'STARTED' then return {-2} end
local now = docq_now()
if cur[1] == 'PENDING' then
  local h = docq_hash(redis.call('HGETALL', record))
  if docq_expired(h, now) then
    docq_expire(record, h, now, ttl)
    return {-4}
  end
end
local n = docq_deliveries(cur[3], cur[4], consumer)
if n > max_deliveries then return {-3, n} end

local a = redis.call('HINCRBY', record, 'attempts', 1)
redis.call('HSET', record, 'state', 'STARTED', 'started_at', string.format('%d', now),
  'deliveries', n, 'consumer', consumer)
docq_changed(record)
return {a, tonumber(cur[2] or '0'), n}
