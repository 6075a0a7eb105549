-- One page of the events after `since` in a topic's history, or "gone" when they cannot
-- all be served. Events about a redacted object (retracted brief, hidden comment) that
-- came before its redaction are left out: a replay never serves their text again.
--
-- KEYS[1] log stream   KEYS[2] epoch   KEYS[3] redactions (object id -> redacting entry id)
-- ARGV[1] epoch of since   ARGV[2] <ms>-<seq> of since   ARGV[3] max entries (page size)
-- ARGV[4] the epoch a reader is given while the topic has no history at all
-- ARGV[5] max bytes of frames in the page (at least one entry is always returned)
-- Returns {"ok", epoch, entries, last entry read ("" if none), more} or {"gone", epoch}.
--
-- `since` is servable only if it was issued in the current epoch and is still in the
-- stream (the stream keeps one entry more than the history size for exactly this), or it is
-- the origin 0-0 and nothing was ever trimmed. The origin of "no history yet" is the origin
-- of whatever history began since: the reader saw none of it.
local epoch = redis.call("GET", KEYS[2])
local since = ARGV[2]
if ARGV[1] == ARGV[4] and since == "0-0" then
  if not epoch then return {"ok", ARGV[4], {}, "", 0} end
elseif not epoch or epoch ~= ARGV[1] then
  return {"gone", epoch}
end
local count = tonumber(ARGV[3])
if redis.call("EXISTS", KEYS[1]) == 0 then
  if since == "0-0" then return {"ok", epoch, {}, "", 0} end
  return {"gone", epoch}
end
local entries
if since == "0-0" then
  local info = redis.call("XINFO", "STREAM", KEYS[1])
  local length, added
  for i = 1, #info, 2 do
    if info[i] == "length" then length = info[i + 1] end
    if info[i] == "entries-added" then added = info[i + 1] end
  end
  if length ~= added then return {"gone", epoch} end
  entries = redis.call("XRANGE", KEYS[1], "-", "+", "COUNT", count)
else
  if #redis.call("XRANGE", KEYS[1], since, since) == 0 then return {"gone", epoch} end
  entries = redis.call("XRANGE", KEYS[1], "(" .. since, "+", "COUNT", count)
end
local budget = tonumber(ARGV[5])
local check = redis.call("HLEN", KEYS[3]) > 0

local function before(a, b)  -- stream ids "<ms>-<seq>": a < b
  local ams, aseq = string.match(a, "(%d+)-(%d+)")
  local bms, bseq = string.match(b, "(%d+)-(%d+)")
  ams, bms = tonumber(ams), tonumber(bms)
  return ams < bms or (ams == bms and tonumber(aseq) < tonumber(bseq))
end

local kept, last, size, more = {}, "", 0, #entries == count and 1 or 0
for i, entry in ipairs(entries) do
  local fields, object, p, s = entry[2], nil, nil, nil
  for j = 1, #fields, 2 do
    if fields[j] == "o" then object = fields[j + 1]
    elseif fields[j] == "p" then p = fields[j + 1]
    elseif fields[j] == "s" then s = fields[j + 1] end
  end
  -- A page stops at its byte budget, so one step never sends more than about that much.
  size = size + #(p or "") + #(s or "")
  if i > 1 and size > budget then
    more = 1
    break
  end
  last = entry[1]
  local redacted_at = false
  if check then
    if not object and p and s then
      -- An entry written before entries named their object: read it from the frame.
      local ok, frame = pcall(cjson.decode, p .. "x" .. s)
      if ok and type(frame) == "table" and type(frame.data) == "table" then
        object = frame.data.id
        if type(object) ~= "string" then object = nil end
      end
    end
    redacted_at = object and redis.call("HGET", KEYS[3], object)
  end
  if not (redacted_at and before(entry[1], redacted_at)) then kept[#kept + 1] = entry end
end
return {"ok", epoch, kept, last, more}
