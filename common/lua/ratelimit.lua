-- ratelimit.lua: check a caller's limit alone (docq_rate_check, and
-- GetStatus/WatchStatus's read limit when the task is in another shard),
-- counting the request when admitted. See common/ratelimit.h.
--   KEYS[1] limit_key  P:{sN}:rate:<caller> or P:{sN}:rate-read:<caller>
--   ARGV[1] limit
--   ARGV[2] window_ms
--   ARGV[3] member     a random id standing for this request (sent twice,
--                      it counts once)
-- Returns {ok (1 or 0), now, n, wait}, as docq_rate_from_reply reads it.
-- lib: rate now
local limit_key = KEYS[1]
local limit, window, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local now = docq_now()

local ok, n, wait = docq_rate(limit_key, limit, window, now, member, true)
return {ok and 1 or 0, now, n, wait}
