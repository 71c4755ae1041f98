-- lib/hash.lua: docq_hash(flat), the table {field = value} of a flat reply
-- {field1, value1, field2, value2, ...} (HGETALL, XINFO).
local function docq_hash(flat)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end
