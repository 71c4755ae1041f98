-- lib/read_task.lua: docq_read_task(rkey, skey, group, ttl_s), the reply
-- {HGETALL of the task record at rkey, queue position}. The position is 0
-- unless the task is PENDING and its place in the stream skey is known to
-- the consumer group (docq_group_read). With ttl_s (DOCQ_RESULT_TTL_S), a
-- PENDING task past its queue deadline is first ended FAILURE
-- (docq_expire: a change, published) and read as it is then, so a task
-- expires when it is read even with no worker running; without ttl_s
-- (nil) it reads only.
-- lib: hash xinfo now expire
local function docq_read_task(rkey, skey, group, ttl_s)
  local f = redis.call('HGETALL', rkey)
  local pos = 0
  local h = docq_hash(f)
  if ttl_s and h['deadline'] and docq_expired(h, docq_now()) then
    docq_expire(rkey, h, docq_now(), ttl_s)
    f = redis.call('HGETALL', rkey)
    h = docq_hash(f)
  end
  if h['state'] == 'PENDING' and h['seq'] then
    local read = docq_group_read(skey, group)
    if read then pos = math.max(1, tonumber(h['seq']) - read) end
  end
  return {f, pos}
end
