-- lib/expire.lua: the queue timeout of a PENDING task (SubmitDoc's
-- queue_timeout, stored by submit.lua as the record's deadline, Unix ms).
--   docq_expired(h, now): true when the record h (docq_hash of it) is
--     PENDING with a deadline at or before now.
--   docq_expire(rkey, h, now, ttl_s) ends such a task: FAILURE with error
--     "expired in queue after N s" (N = the queue timeout, deadline -
--     created_at, in seconds), finished_at = now, expiry as docq_ended
--     sets it, version + 1, published. Its stream entry is left as it is:
--     the worker that receives it finds the task terminal (start.lua) and
--     only acknowledges it, so the AI service never sees it.
-- lib: ended publish
local function docq_expired(h, now)
  return h['state'] == 'PENDING' and h['deadline'] ~= nil and tonumber(h['deadline']) <= now
end

local function docq_expire(rkey, h, now, ttl_s)
  local ms = tonumber(h['deadline']) - tonumber(h['created_at'] or h['deadline'])
  local secs
  if ms % 1000 == 0 then
    secs = string.format('%d', ms / 1000)
  else
    secs = string.gsub(string.format('%.3f', ms / 1000), '0+$', '')
  end
  redis.call('HSET', rkey, 'state', 'FAILURE', 'finished_at', string.format('%d', now),
    'error', 'expired in queue after ' .. secs .. ' s')
  docq_ended(rkey, now, ttl_s)
  docq_changed(rkey)
end
