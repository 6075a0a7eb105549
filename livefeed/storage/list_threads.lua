-- A page of an article's comment threads, newest thread first, each with its replies
-- (oldest first), plus the featured comments, and the topic's position taken in the same
-- atomic step, so "list, then subscribe with since" can never miss an event.
--
-- KEYS[1] log stream   KEYS[2] epoch   KEYS[3] items hash   KEYS[4] index (every visible id)
-- KEYS[5] top-level ids   KEYS[6] featured ids
-- ARGV[1] the epoch of "no history yet"   ARGV[2] before id ("" for the newest)   ARGV[3] limit
-- ARGV[4] key name of a comment's replies, without the comment id   ARGV[5] replies shown
-- ARGV[6] featured shown
-- Returns {"ok", JSON {position, threads: [[record, reply count, replies...]], featured}}
-- or {"nobefore"} when `before` is not a listed top-level id.
--
-- The index is the truth of what readers may see (it changes atomically with each event);
-- the other sets are maintained after it, so each id is checked against the index.
-- A read writes nothing: without history yet, the position is the topic's "no history yet".
local epoch = redis.call("GET", KEYS[2]) or ARGV[1]
local last = redis.call("XREVRANGE", KEYS[1], "+", "-", "COUNT", 1)
local position = epoch .. "-" .. (last[1] and last[1][1] or "0-0")

-- Comments stored before threads existed are all top-level and only in the index.
local top = KEYS[5]
if redis.call("EXISTS", top) == 0 then top = KEYS[4] end

local function visible(ids)
  local found = {}
  for _, id in ipairs(ids) do
    if redis.call("ZSCORE", KEYS[4], id) then
      local record = redis.call("HGET", KEYS[3], id)
      if record then found[#found + 1] = record end
    end
  end
  return found
end

local start = 0
if ARGV[2] ~= "" then
  local rank = redis.call("ZREVRANK", top, ARGV[2])
  if not rank then return {"nobefore"} end
  start = rank + 1
end
local limit = tonumber(ARGV[3])
local threads = {}
if limit > 0 then
  local ids = redis.call("ZREVRANGE", top, start, start + limit - 1)
  for _, id in ipairs(ids) do
    if redis.call("ZSCORE", KEYS[4], id) then
      local record = redis.call("HGET", KEYS[3], id)
      if record then
        local replies_key = ARGV[4] .. id
        local thread = {record, redis.call("ZCARD", replies_key)}
        for _, reply in ipairs(visible(redis.call("ZRANGE", replies_key, 0, tonumber(ARGV[5]) - 1))) do
          thread[#thread + 1] = reply
        end
        threads[#threads + 1] = thread
      end
    end
  end
end
local featured = {}
if ARGV[2] == "" and tonumber(ARGV[6]) > 0 then
  featured = visible(redis.call("ZREVRANGE", KEYS[6], 0, tonumber(ARGV[6]) - 1))
end
return {"ok", cjson.encode({position = position, threads = threads, featured = featured})}
