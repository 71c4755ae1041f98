-- lib/rate.lua: docq_rate(key, limit, window, now, member, take), one check
-- of a sliding-log rate limit (see common/ratelimit.h), returning ok, n,
-- wait. key is the caller's sorted set, window and now are in ms. With
-- take, admits member when there is room (ok = true) or refuses (ok =
-- false, nothing written but the trimming of expired members); without
-- take, only looks. n = requests counted in the window afterwards; wait =
-- ms until the next one leaves it (refused: until the caller would be
-- admitted), 0 when there is none. limit <= 0: no limit, nothing touched.
local function docq_rate(key, limit, window, now, member, take)
  if limit <= 0 then return true, 0, 0 end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local n = redis.call('ZCARD', key)
  if take and n >= limit then
    local e = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    return false, n, tonumber(e[2]) + window - now
  end
  if take then
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, window)
    n = n + 1
  end
  if n == 0 then return true, 0, 0 end
  local e = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return true, n, tonumber(e[2]) + window - now
end
