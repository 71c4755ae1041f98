-- submit.lua: SubmitDoc's step (docq_store_submit). Checks the caller's
-- SubmitDoc limit and, when it admits the request, creates the task: a
-- PENDING record and its stream entry, atomically. A refused request writes
-- nothing but the trimming of expired limit entries.
--   KEYS[1] record      P:{sN}:task:<task_id>
--   KEYS[2] stream      P:{sN}:tasks
--   KEYS[3] limit_key   P:{sN}:rate:<caller> (common/ratelimit.h)
--   KEYS[4] index       P:{sN}:owned:<caller> (ListTasks; see the end)
--   KEYS[5] request_key P:{sN}:req:<caller>:<hex of request_id>; only when
--                       the request has a request_id (store.h)
--   ARGV[1] task_id     also the member counted in the limit's log
--   ARGV[2] doc_id
--   ARGV[3] limit       0: none
--   ARGV[4] window_ms
--   ARGV[5] owner       the submitter's caller id; '': none
--   ARGV[6] timeout_ms  the queue timeout; 0: none
--   ARGV[7] request_ms  DOCQ_REQUEST_ID_TTL_S in ms (with KEYS[5])
--   ARGV[8] ttl_s       DOCQ_RESULT_TTL_S, for a known task that expires now
-- Returns {admitted (1 or 0), created_at (now when refused), n, wait, how,
-- task_id, state}: the first four as docq_rate_from_reply reads them; how
-- is 0 for a new task (task_id = ARGV[1], state PENDING, or its state now
-- when this is a repeat), 1 when the request key already names a task (its
-- id and state now; state '' when its record has expired), 2 when it names
-- one for another doc_id (its id; nothing written). A known request id is not counted by the limit
-- again, nor refused by it. A repeat (the reply was lost and the command
-- sent again) finds the record, changes nothing and is not counted twice.
-- An admitted task's record gets version 1 and seq, the entry's number in
-- the stream (its entries-added right after the XADD), from which the
-- queue position is computed; with a queue timeout, deadline = now +
-- timeout (Unix ms: read.lua and start.lua end it FAILURE past it); with a
-- request_id, request_key naming the request key, a hash {task_id, doc_id,
-- until = now + request_ms} without expiry until the task ends
-- (lib/ended.lua). The new record, written whole in one HSET, is published
-- to watchers as written.
-- lib: rate publish now xinfo hash expire
local record, stream, limit_key, req = KEYS[1], KEYS[2], KEYS[3], KEYS[5]
local task_id, doc_id, owner = ARGV[1], ARGV[2], ARGV[5]
local limit, window = tonumber(ARGV[3]), tonumber(ARGV[4])
local timeout = tonumber(ARGV[6] or '0')
local now = docq_now()

if req then
  local known = redis.call('HMGET', req, 'task_id', 'doc_id')
  if known[1] and known[1] ~= task_id then
    local _, n, wait = docq_rate(limit_key, limit, window, now, task_id, false)
    if known[2] ~= doc_id then return {1, now, n, wait, 2, known[1], ''} end
    local rkey = string.match(record, '^(.*:task:)') .. known[1]
    local h = docq_hash(redis.call('HGETALL', rkey))
    if docq_expired(h, now) then
      docq_expire(rkey, h, now, ARGV[8])
      h['state'] = 'FAILURE'
    end
    return {1, tonumber(h['created_at'] or now), n, wait, 1, known[1], h['state'] or ''}
  end
end

local old = redis.call('HMGET', record, 'created_at', 'state')
if old[1] then
  local _, n, wait = docq_rate(limit_key, limit, window, now, task_id, false)
  return {1, tonumber(old[1]), n, wait, 0, task_id, old[2] or 'PENDING'}
end
local ok, n, wait = docq_rate(limit_key, limit, window, now, task_id, true)
if not ok then return {0, now, n, wait, 0, task_id, ''} end

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
if timeout > 0 then
  f[#f + 1] = 'deadline'
  f[#f + 1] = string.format('%d', now + timeout)
end
if req then
  f[#f + 1] = 'request_key'
  f[#f + 1] = req
  redis.call('HSET', req, 'task_id', task_id, 'doc_id', doc_id,
    'until', string.format('%d', now + tonumber(ARGV[7])))
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
return {1, now, n, wait, 0, task_id, 'PENDING'}
