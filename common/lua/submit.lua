-- submit.lua: SubmitDoc's step (docq_store_submit). Checks the caller's
-- SubmitDoc limit and, when it admits the request, creates the task: a
-- PENDING record and its stream entry, atomically. A refused request writes
-- nothing but the trimming of expired limit entries.
--   KEYS[1] record      P:{sN}:task:<task_id>
--   KEYS[2] stream      P:{sN}:tasks
--   KEYS[3] limit_key   P:{sN}:rate:<caller> (common/ratelimit.h)
--   KEYS[4] index       P:{sN}:owned:<caller> (ListTasks; see the end)
--   ARGV[1] task_id     also the member counted in the limit's log
--   ARGV[2] doc_id
--   ARGV[3] limit       0: none
--   ARGV[4] window_ms
--   ARGV[5] owner       the submitter's caller id; '': none
-- Returns {admitted (1 or 0), created_at (now when refused), n, wait}, as
-- docq_rate_from_reply reads it. A repeat (the reply was lost and the
-- command sent again) finds the record, changes nothing and is not counted
-- twice. An admitted task's record gets version 1 and seq, the entry's
-- number in the stream (its entries-added right after the XADD), from which
-- the queue position is computed; the new record, written whole in one
-- HSET, is published to watchers as written.
-- lib: rate publish now xinfo
local record, stream, limit_key = KEYS[1], KEYS[2], KEYS[3]
local task_id, doc_id, owner = ARGV[1], ARGV[2], ARGV[5]
local limit, window = tonumber(ARGV[3]), tonumber(ARGV[4])
local now = docq_now()

local old = redis.call('HGET', record, 'created_at')
if old then
  local _, n, wait = docq_rate(limit_key, limit, window, now, task_id, false)
  return {1, tonumber(old), n, wait}
end
local ok, n, wait = docq_rate(limit_key, limit, window, now, task_id, true)
if not ok then return {0, now, n, wait} end

redis.call('XADD', stream, '*', 'task_id', task_id, 'doc_id', doc_id)
local f = {'doc_id', doc_id, 'state', 'PENDING', 'attempts', '0', 'created_at', string.format('%d', now)}
local added = docq_entries_added(stream)
if added then
  f[#f + 1] = 'seq'
  f[#f + 1] = string.format('%d', added)
end
f[#f + 1] = 'version'
f[#f + 1] = '1'
if owner ~= '' then
  f[#f + 1] = 'owner'
  f[#f + 1] = owner
end
redis.call('HSET', record, unpack(f))
docq_publish_fields(record, f)

-- ListTasks: the caller's index of its tasks (list.lua) gets the new task,
-- scored with created_at in thousandths of a ms, raised above the index's
-- newest score, so that every submit sorts after each earlier one (a page
-- token stays valid however many tasks come). The index's oldest two
-- entries are dropped when their records are gone, so that it does not
-- grow with expired tasks.
local index = KEYS[4]
local score = now * 1000
local top = redis.call('ZREVRANGE', index, 0, 0, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= score then score = tonumber(top[2]) + 1 end
redis.call('ZADD', index, string.format('%d', score), task_id)
local rprefix = string.sub(record, 1, #record - #task_id)
for _, id in ipairs(redis.call('ZRANGE', index, 0, 1)) do
  if redis.call('EXISTS', rprefix .. id) == 0 then redis.call('ZREM', index, id) end
end
return {1, now, n, wait}
