-- A page of a topic's listed items, newest first, with the topic's position taken in the
-- same atomic step, so "list, then subscribe with since" can never miss an event.
-- A read writes nothing: a topic without history yet answers from the epoch of "no history
-- yet" (ARGV[1]), whose origin replays whatever history begins later.
--
-- KEYS[1] log stream   KEYS[2] epoch   KEYS[3] items hash   KEYS[4] index
-- ARGV[1] the epoch of "no history yet"   ARGV[2] before id ("" for the newest)   ARGV[3] limit
-- Returns {"ok", position, records...} or {"nobefore"} when `before` is not listed.
local epoch = redis.call("GET", KEYS[2]) or ARGV[1]
local last = redis.call("XREVRANGE", KEYS[1], "+", "-", "COUNT", 1)
local position = epoch .. "-" .. (last[1] and last[1][1] or "0-0")
local start = 0
if ARGV[2] ~= "" then
  local rank = redis.call("ZREVRANK", KEYS[4], ARGV[2])
  if not rank then return {"nobefore"} end
  start = rank + 1
end
local limit = tonumber(ARGV[3])
local result = {"ok", position}
if limit == 0 then return result end
local ids = redis.call("ZREVRANGE", KEYS[4], start, start + limit - 1)
if #ids > 0 then
  local records = redis.call("HMGET", KEYS[3], unpack(ids))
  for i = 1, #records do
    if records[i] then result[#result + 1] = records[i] end
  end
end
return result
