-- heartbeat.lua: a worker's heartbeat (docq_store_heartbeat): reset the
-- idle time of its entries (XCLAIM ... JUSTID, which counts no delivery)
-- where they are still pending under it, so that no live worker's entry is
-- reclaimed. An entry another consumer owns now, or no longer pending, is
-- left alone and reported lost.
--   KEYS[1] stream     P:{sN}:tasks
--   ARGV[1] group      DOCQ_GROUP
--   ARGV[2] consumer   the worker's consumer name
--   ARGV[3..] entry ids
-- Returns, per entry id in order, 0 when its idle time was reset and 1
-- when it is not pending under consumer (lost).
local stream = KEYS[1]
local group, consumer = ARGV[1], ARGV[2]

local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', stream, group, ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == consumer then
    redis.call('XCLAIM', stream, group, consumer, 0, ARGV[i], 'JUSTID')
    lost[i - 2] = 0
  else
    lost[i - 2] = 1
  end
end
return lost
