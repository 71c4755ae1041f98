-- lib/deliveries.lua: docq_deliveries(counted, last, consumer), a task's
-- real deliveries once consumer has received its entry: counted (the
-- record's deliveries field; false or nil: 0), plus 1 when another consumer
-- (last, the record's consumer field), or none, started the task last. A
-- worker re-reading its own pending entry after a Redis outage, or a script
-- sent again after a lost reply, thus counts nothing; consumer names are
-- unique per worker process (docq_consumer_name), so a restarted worker
-- counts.
local function docq_deliveries(counted, last, consumer)
  local n = tonumber(counted or '0')
  if last ~= consumer then n = n + 1 end
  return n
end
