-- delete.lua: DeleteTask in one step (docq_store_delete_queue): the
-- caller's read limit (as ratelimit.lua), then, when admitted, the deletion
-- of an ended task of the caller: its record, its entry in the caller's
-- index and its request_id key. A receipt naming the call stays for a
-- minute, so that the call sent again after a lost reply finds its own
-- deletion done.
--   KEYS[1] limit_key  P:{sN}:rate-read:<caller> (common/ratelimit.h)
--   KEYS[2] record     P:{sN}:task:<task_id>
--   KEYS[3] index      P:{sN}:owned:<caller> (list.lua)
--   KEYS[4] receipt    P:{sN}:deleted:<task_id>
--   ARGV[1] limit      0: none
--   ARGV[2] window_ms
--   ARGV[3] member     a random id standing for this call (also the receipt)
--   ARGV[4] task_id
--   ARGV[5] owner      the caller id of an authenticated caller: the
--                      record's owner must be it; '': the caller is an
--                      address, and the task must be in its index
--   ARGV[6] req_prefix P:{sN}:req:<caller>: (every request key of the
--                      caller starts with it)
-- Returns {{ok, now, n, wait}} when the limit refuses, else {{ok, now, n,
-- wait}, outcome, state}: outcome 1 when the task was deleted, 0 when there
-- is no such task of the caller (nothing written), -1 when the task has not
-- ended (nothing written; state names its state). Sent twice after a lost
-- reply, the second is counted once and finds its receipt (1).
-- lib: rate now
local limit_key, record, index, receipt = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local limit, window, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local task_id, owner, req_prefix = ARGV[4], ARGV[5], ARGV[6]
local now = docq_now()

local ok, n, wait = docq_rate(limit_key, limit, window, now, member, true)
local rate = {ok and 1 or 0, now, n, wait}
if not ok then return {rate} end

local h = redis.call('HMGET', record, 'state', 'owner', 'request_key', 'request_id')
local state, rec_owner, request_key, request_id = h[1], h[2], h[3], h[4]
if not state then
  if redis.call('GET', receipt) == member then return {rate, 1, ''} end
  return {rate, 0, ''}
end
if owner ~= '' then
  if rec_owner ~= owner then return {rate, 0, ''} end
elseif not redis.call('ZSCORE', index, task_id) then
  return {rate, 0, ''}
end
if state ~= 'SUCCESS' and state ~= 'FAILURE' and state ~= 'CANCELLED' then
  return {rate, -1, state}
end
redis.call('DEL', record)
redis.call('ZREM', index, task_id)
redis.call('SET', receipt, member, 'PX', 60000)
-- SubmitDoc's request_id (issue 16): the request key the record names
-- (request_key, the whole key; or request_id, the key being req_prefix ..
-- request_id) is deleted too, when it is the caller's and still names this
-- task (a later submit may have reused the request id).
local k = request_key or (request_id and req_prefix .. request_id)
if k and string.sub(k, 1, #req_prefix) == req_prefix then
  local t = redis.call('TYPE', k)['ok']
  local names = nil
  if t == 'string' then names = redis.call('GET', k)
  elseif t == 'hash' then names = redis.call('HGET', k, 'task_id') end
  if names and string.find(names, task_id, 1, true) then redis.call('DEL', k) end
end
return {rate, 1, ''}
