-- Apply one content change, append its event to the topic's capped stream and publish
-- "<previous event id> <frame>" on the topic's channel, atomically: history and live path
-- never disagree.
--
-- KEYS[1] log stream   KEYS[2] epoch   KEYS[3] items (hash, or string for "set")   KEYS[4] index
-- KEYS[5] this call's answer, kept briefly so a retried call is not applied twice
-- KEYS[6] redactions (hash: object id -> the entry id of the event that redacted it)
-- ARGV[1] channel  ARGV[2] maxlen  ARGV[3] op  ARGV[4] object id  ARGV[5] record JSON
-- ARGV[6] index score  ARGV[7] frame prefix  ARGV[8] frame suffix  ARGV[9] epoch if none yet
-- ARGV[10] PUBLISH or SPUBLISH   ARGV[11] seconds to keep the answer
-- ARGV[12] the id of the object the event is about (data.id), "" if none
-- ARGV[13] "hold": return the live message instead of publishing it; the caller publishes
--          it once replicas confirmed the write, so no reader sees an event a failover
--          could still take back
--
-- ops: create (refused if the id was ever used), update (only if listed), remove (unlist,
-- keep the record, and redact: every earlier event of the topic about the same object is
-- left out of replays from now on), set (plain string), none.
-- Returns {"ok", event id[, held message]} or {"exists"} / {"missing"} with nothing written.
local op, id, record = ARGV[3], ARGV[4], ARGV[5]

-- A client that lost the answer to this very call and sent it again gets the first
-- answer back instead of a second write (and a second event).
local done = redis.call("GET", KEYS[5])
if done then
  -- A caller that WAITs for replicas next must have written on this connection, or WAIT
  -- would confirm nothing: rewrite the answer (same value) to mark the position.
  if ARGV[13] == "hold" then redis.call("SET", KEYS[5], done, "KEEPTTL") end
  return cjson.decode(done)
end

local function refuse(why)
  redis.call("SET", KEYS[5], cjson.encode({why}), "EX", ARGV[11])
  return {why}
end

if op == "create" then
  if redis.call("HEXISTS", KEYS[3], id) == 1 then return refuse("exists") end
  redis.call("HSET", KEYS[3], id, record)
  redis.call("ZADD", KEYS[4], ARGV[6], id)
elseif op == "update" then
  if not redis.call("ZSCORE", KEYS[4], id) then return refuse("missing") end
  redis.call("HSET", KEYS[3], id, record)
elseif op == "remove" then
  if redis.call("ZREM", KEYS[4], id) == 0 then return refuse("missing") end
  redis.call("HSET", KEYS[3], id, record)
elseif op == "set" then
  redis.call("SET", KEYS[3], record)
end

local epoch = redis.call("GET", KEYS[2])
if not epoch then
  epoch = ARGV[9]
  redis.call("SET", KEYS[2], epoch)
end
local last = redis.call("XREVRANGE", KEYS[1], "+", "-", "COUNT", 1)
local prev = epoch .. "-" .. (last[1] and last[1][1] or "0-0")
-- The entry keeps the frame around its id (which XADD assigns), so a replay rebuilds the
-- exact frame that was published.
-- "o" names the object, so a replay can leave out the events of a redacted one.
local entry
if ARGV[12] ~= "" then
  entry = redis.call(
    "XADD", KEYS[1], "MAXLEN", "=", ARGV[2], "*", "p", ARGV[7], "s", ARGV[8], "o", ARGV[12])
else
  entry = redis.call("XADD", KEYS[1], "MAXLEN", "=", ARGV[2], "*", "p", ARGV[7], "s", ARGV[8])
end
-- Redaction happens in the same step as the retraction: no replay can ever serve the
-- object's text once its removal is visible anywhere.
if op == "remove" then redis.call("HSET", KEYS[6], id, entry) end
local event_id = epoch .. "-" .. entry
-- The live message names the event before it, so a hub can tell when it missed one.
-- PUBLISH on a standalone Redis, SPUBLISH (to the topic's shard only) on a cluster.
local message = prev .. " " .. ARGV[7] .. event_id .. ARGV[8]
local answer = {"ok", event_id}
if ARGV[13] == "hold" then
  answer[3] = message
else
  redis.call(ARGV[10], ARGV[1], message)
end
redis.call("SET", KEYS[5], cjson.encode(answer), "EX", ARGV[11])
return answer
