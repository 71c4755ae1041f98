-- lib/now.lua: docq_now(), the time in milliseconds from Redis TIME, so
-- that every server and worker shares Redis's clock. An integer-valued Lua
-- number.
local function docq_now()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
