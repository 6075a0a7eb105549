-- The events after `since` in a topic's history, or "gone" when they cannot all be served.
--
-- KEYS[1] log stream   KEYS[2] epoch
-- ARGV[1] epoch of since   ARGV[2] <ms>-<seq> of since   ARGV[3] max entries
-- Returns {"ok", epoch, entries} or {"gone", epoch or false}.
--
-- `since` is servable only if it was issued in the current epoch and is still in the
-- stream (the stream keeps one entry more than the history size for exactly this), or it is
-- the origin 0-0 and nothing was ever trimmed.
local epoch = redis.call("GET", KEYS[2])
if not epoch or epoch ~= ARGV[1] then return {"gone", epoch} end
local since = ARGV[2]
if redis.call("EXISTS", KEYS[1]) == 0 then
  if since == "0-0" then return {"ok", epoch, {}} end
  return {"gone", epoch}
end
if since == "0-0" then
  local info = redis.call("XINFO", "STREAM", KEYS[1])
  local length, added
  for i = 1, #info, 2 do
    if info[i] == "length" then length = info[i + 1] end
    if info[i] == "entries-added" then added = info[i + 1] end
  end
  if length ~= added then return {"gone", epoch} end
  return {"ok", epoch, redis.call("XRANGE", KEYS[1], "-", "+", "COUNT", ARGV[3])}
end
if #redis.call("XRANGE", KEYS[1], since, since) == 0 then return {"gone", epoch} end
return {"ok", epoch, redis.call("XRANGE", KEYS[1], "(" .. since, "+", "COUNT", ARGV[3])}
