-- cancels.lua: the ids of a shard's tasks cancelled while STARTED, after a
-- given entry of the shard's cancels stream (docq_store_cancels_queue): a
-- worker holding tasks of the shard reads them every few hundred ms and
-- aborts the calls it runs for them (worker/cancels.c).
--   KEYS[1] cancels    P:{sN}:cancels
--   ARGV[1] after      the id of the last entry already seen; '': none yet
--   ARGV[2] count      at most this many entries
-- Returns {last, task_id, ...}: the task ids of up to count entries after
-- `after`, oldest first, and last, the id of the last of them (`after`
-- when there is none). With after '' it returns only {last}, the id of
-- the stream's newest entry ('0-0' when the stream is empty or missing):
-- where to read from for the cancels still to come. Reads only.
local cancels = KEYS[1]
local after, count = ARGV[1], ARGV[2]

if after == '' then
  local newest = redis.call('XREVRANGE', cancels, '+', '-', 'COUNT', 1)
  if newest[1] then return {newest[1][1]} end
  return {'0-0'}
end
local out = {after}
for _, e in ipairs(redis.call('XRANGE', cancels, '(' .. after, '+', 'COUNT', count)) do
  out[1] = e[1]
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'task_id' then out[#out + 1] = f[i + 1] end
  end
end
return out
