-- lib/read_task.lua: docq_read_task(rkey, skey, group), the reply
-- {HGETALL of the task record at rkey, queue position}. The position is 0
-- unless the task is PENDING and its place in the stream skey is known to
-- the consumer group (docq_group_read). Reads only.
-- lib: hash xinfo
local function docq_read_task(rkey, skey, group)
  local f = redis.call('HGETALL', rkey)
  local pos = 0
  local h = docq_hash(f)
  if h['state'] == 'PENDING' and h['seq'] then
    local read = docq_group_read(skey, group)
    if read then pos = math.max(1, tonumber(h['seq']) - read) end
  end
  return {f, pos}
end
