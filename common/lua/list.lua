-- list.lua: ListTasks in one step (docq_store_list_queue): the caller's read
-- limit (as ratelimit.lua), then, when admitted, a page of the caller's
-- index of its tasks, newest first. Entries whose record is gone (expired
-- or deleted) are dropped from the index as they are met; the others are
-- read whole, with their queue position.
--   KEYS[1] limit_key  P:{sN}:rate-read:<caller> (common/ratelimit.h)
--   KEYS[2] index      P:{sN}:owned:<caller>: member task id, score its
--                      place (submit.lua), one more for each newer submit
--   KEYS[3] stream     P:{sN}:tasks (queue positions)
--   ARGV[1] limit      0: none
--   ARGV[2] window_ms
--   ARGV[3] member     a random id standing for this read
--   ARGV[4] group      DOCQ_GROUP
--   ARGV[5] rprefix    P:{sN}:task: (a record's key is rprefix .. task id)
--   ARGV[6] page_size  at most this many tasks
--   ARGV[7] after      the score of the page token's entry; '': from the newest
--   ARGV[8] after_id   the page token's task id (ties: lower ids come after)
--   ARGV[9] owner      '': any record; else only records owned by it
--   ARGV[10] max_bytes stop once the tasks returned hold this many bytes
--   ARGV[11] max_scan  stop after this many entries looked at
--   ARGV[12...]        state names to keep; none: every state
-- Returns {{ok, now, n, wait}} when the limit refuses, else {{ok, now, n,
-- wait}, tasks, next}: tasks is flat, {task_id, fields (HGETALL), position,
-- ...}; next is {score, task_id} of the last entry looked at when more
-- entries follow it, else {}. Sent twice, it counts the read once (same
-- member); besides the limit it only drops entries of records that are gone.
-- lib: rate xinfo now
local limit_key, index, stream = KEYS[1], KEYS[2], KEYS[3]
local limit, window, member, group = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local rprefix, page_size = ARGV[5], tonumber(ARGV[6])
local after, after_id, owner = ARGV[7], ARGV[8], ARGV[9]
local max_bytes, max_scan = tonumber(ARGV[10]), tonumber(ARGV[11])
local now = docq_now()

local ok, n, wait = docq_rate(limit_key, limit, window, now, member, true)
local rate = {ok and 1 or 0, now, n, wait}
if not ok then return {rate} end

local states = {}
local any_state = #ARGV < 12
for i = 12, #ARGV do states[ARGV[i]] = true end
local after_score = after ~= '' and tonumber(after) or nil
local hi = after ~= '' and after or '+inf'

local tasks, gone = {}, {}
local found, bytes, scanned, offset = 0, 0, 0, 0
local last, more, read = nil, false, nil
local batch = 100
while true do
  local e = redis.call('ZREVRANGEBYSCORE', index, hi, '-inf', 'WITHSCORES', 'LIMIT', offset, batch)
  if #e == 0 then break end
  offset = offset + #e / 2
  for i = 1, #e, 2 do
    local id, score = e[i], tonumber(e[i + 1])
    if not (after_score and score == after_score and id >= after_id) then
      if found >= page_size or bytes >= max_bytes or scanned >= max_scan then
        more = true
        break
      end
      scanned = scanned + 1
      last = {e[i + 1], id}
      local h = redis.call('HMGET', rprefix .. id, 'state', 'owner')
      if not h[1] then
        gone[#gone + 1] = id
      elseif (owner == '' or h[2] == owner) and (any_state or states[h[1]]) then
        local f = redis.call('HGETALL', rprefix .. id)
        for j = 2, #f, 2 do bytes = bytes + #f[j] end
        local pos = 0
        local r = docq_hash(f)
        if r['state'] == 'PENDING' and r['seq'] then
          if read == nil then read = docq_group_read(stream, group) or false end
          if read then pos = math.max(1, tonumber(r['seq']) - read) end
        end
        tasks[#tasks + 1] = id
        tasks[#tasks + 1] = f
        tasks[#tasks + 1] = pos
        found = found + 1
      end
    end
  end
  if more or #e < 2 * batch then break end
end
for i = 1, #gone, 100 do
  redis.call('ZREM', index, unpack(gone, i, math.min(i + 99, #gone)))
end
if more and last then return {rate, tasks, last} end
return {rate, tasks, {}}
