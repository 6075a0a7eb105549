-- The positions of several topics and the values of a few plain keys, in one call: what a
-- page needs to tell whether anything it shows changed. Reads only; keys of several
-- topics, so a standalone Redis only (a cluster reads the same with a pipeline).
--
-- KEYS: (epoch, log stream) of each topic, then the plain keys
-- ARGV[1] the number of topics
-- Returns, per topic, its epoch ("" while it has no history) and its last entry id ("" if
-- none), then the value of each plain key ("" if absent).
local topics = tonumber(ARGV[1])
local result = {}
for t = 0, topics - 1 do
  local last = redis.call("XREVRANGE", KEYS[2 * t + 2], "+", "-", "COUNT", 1)
  result[#result + 1] = redis.call("GET", KEYS[2 * t + 1]) or ""
  result[#result + 1] = last[1] and last[1][1] or ""
end
for k = 2 * topics + 1, #KEYS do
  result[#result + 1] = redis.call("GET", KEYS[k]) or ""
end
return result
