-- lib/ended.lua: what every script that ends a task (SUCCESS, FAILURE)
-- does to the keys that live as long as the record.
--   docq_ended(rkey, now, ttl_s) sets the record's expiry to ttl_s
--     (DOCQ_RESULT_TTL_S) and, when the record names a request key
--     (request_key: submitted with a request_id, see submit.lua), makes
--     that key expire no sooner than the record: at the later of its own
--     end (its `until` field, created_at + DOCQ_REQUEST_ID_TTL_S) and the
--     record's. The request key shares the record's hash tag {sN} (the
--     caller's shard is the task's), so this stays in one slot.
local function docq_ended(rkey, now, ttl_s)
  redis.call('EXPIRE', rkey, ttl_s)
  local req = redis.call('HGET', rkey, 'request_key')
  if not req then return end
  local till = tonumber(redis.call('HGET', req, 'until') or '0')
  local ms = math.max(till - now, tonumber(ttl_s) * 1000)
  if redis.call('EXISTS', req) == 1 then redis.call('PEXPIRE', req, ms) end
end
