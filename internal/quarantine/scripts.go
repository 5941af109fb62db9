package quarantine

import "github.com/redis/go-redis/v9"

// The asynq v0.26.0 scripts the guard replaces, by the SHA-1 of their text
// (internal/rdb/rdb.go). TestPinnedScripts reads them from the module
// source and fails when an asynq upgrade changes them; until the pins are
// updated the guard passes the new scripts through unguarded and says so
// once, and the periodic scan still sets poison aside.
const (
	// dequeueSHA is dequeueCmd: KEYS pending, paused, active, lease;
	// ARGV lease expiry (Unix seconds), task key prefix. It returns the
	// dequeued task's msg, or nil.
	dequeueSHA = "a8153319360adc71cdc370107f8ab9786f204765"
	// listLeaseExpiredSHA is listLeaseExpiredCmd: KEYS lease; ARGV cutoff
	// (Unix seconds), task key prefix. It returns the msg of every task
	// whose lease expired before the cutoff.
	listLeaseExpiredSHA = "16988a462595f6ee317be300951533b004f27f5c"
)

// luaLib holds the functions the guarded scripts share. Every key is
// derived from asynq's queue prefix "asynq:{<queue>}:" (qp) and so lies in
// the queue's hash slot, as asynq's own scripts assume. The quarantine of
// queue q is the sorted set taskhost:quarantine:{q} (task ID by Unix time)
// and, per task, the hash taskhost:quarantine:{q}:<id>: the task's hash as
// it was, plus quarantine_reason, quarantined_at and quarantined_from.
const luaLib = `
local function qkeys(qp)
	local idx = "taskhost:quarantine:" .. string.sub(qp, 7, -2)
	return idx, idx .. ":"
end

-- setaside moves task id of queue prefix qp to the quarantine: out of every
-- state list and set, its hash renamed. from overrides the state recorded.
local function setaside(qp, id, reason, now, from)
	local states = {}
	if redis.call("LREM", qp .. "pending", 0, id) > 0 then table.insert(states, "pending") end
	if redis.call("LREM", qp .. "active", 0, id) > 0 then table.insert(states, "active") end
	redis.call("ZREM", qp .. "lease", id)
	for _, s in ipairs({"scheduled", "retry", "archived", "completed"}) do
		if redis.call("ZREM", qp .. s, id) > 0 then table.insert(states, s) end
	end
	if from == nil or from == "" then from = table.concat(states, ",") end
	local idx, hp = qkeys(qp)
	local key = qp .. "t:" .. id
	if redis.call("HLEN", key) > 0 then
		redis.call("RENAME", key, hp .. id)
	end
	redis.call("HSET", hp .. id, "quarantine_reason", reason, "quarantined_at", now, "quarantined_from", from)
	redis.call("ZADD", idx, now, id)
end

local function varint(n)
	local s = ""
	while n >= 128 do
		s = s .. string.char(n % 128 + 128)
		n = math.floor(n / 128)
	end
	return s .. string.char(n)
end

-- archive moves an oversized task to asynq's archive as asynq's Archive
-- does (trimmed by age and size, counted as processed and failed), with
-- reason as its last error: the fields error_msg (7) and last_failed_at
-- (11) are appended to msg, which protobuf reads as overriding any earlier
-- value, so msg is never sent to a client. cfg holds now, today, the stats
-- expiry, the archive cutoff and the archive's size limit.
local function archive(qp, id, size, limit, cfg)
	local key = qp .. "t:" .. id
	redis.call("LREM", qp .. "pending", 0, id)
	redis.call("LREM", qp .. "active", 0, id)
	redis.call("ZREM", qp .. "lease", id)
	redis.call("ZREM", qp .. "scheduled", id)
	redis.call("ZREM", qp .. "retry", id)
	local reason = "taskhost: task message of " .. size .. " bytes is larger than worker.max_payload_bytes allows (" ..
		limit .. " bytes with headers); archived without being read"
	local msg = redis.call("HGET", key, "msg")
	redis.call("HSET", key, "msg", msg .. "\58" .. varint(#reason) .. reason .. "\88" .. varint(cfg.now), "state", "archived")
	local archived = qp .. "archived"
	redis.call("ZADD", archived, cfg.now, id)
	local old = redis.call("ZRANGE", archived, "-inf", cfg.cutoff, "BYSCORE")
	for _, o in ipairs(old) do redis.call("DEL", qp .. "t:" .. o) end
	if #old > 0 then redis.call("ZREM", archived, unpack(old)) end
	local extra = redis.call("ZRANGE", archived, 0, -cfg.maxarchive)
	for _, o in ipairs(extra) do redis.call("DEL", qp .. "t:" .. o) end
	if #extra > 0 then redis.call("ZREM", archived, unpack(extra)) end
	for _, k in ipairs({qp .. "processed:" .. cfg.today, qp .. "failed:" .. cfg.today}) do
		if tonumber(redis.call("INCR", k)) == 1 then redis.call("EXPIREAT", k, cfg.expire) end
	end
	redis.call("INCR", qp .. "processed")
	redis.call("INCR", qp .. "failed")
end

local function archcfg(i)
	return {now = tonumber(ARGV[i]), today = ARGV[i + 1], expire = ARGV[i + 2], cutoff = ARGV[i + 3],
		maxarchive = tonumber(ARGV[i + 4])}
end
`

// guardedDequeue is asynq's dequeue with the guard: a task whose msg is
// missing (or its hash) is set aside and the next one tried, up to 8 per
// call; one larger than the limit is left active and leased, unread, and
// the call ends there: the Go side archives it (Guard.archive) in a call of
// its own, because archiving copies the whole msg and can be slow, and a
// lease recovery archives it should that call fail.
// KEYS are asynq's; ARGV[1] and ARGV[2] are asynq's, ARGV[3] the msg size
// limit, ARGV[4..8] the archive settings (see archcfg; now is used). It
// returns {id or false, msg or false, {oversized ids}, {set-aside ids}}, or
// nil when the queue is paused, or empty with nothing set aside.
var guardedDequeue = redis.NewScript(luaLib + `
if redis.call("EXISTS", KEYS[2]) == 1 then return nil end
local qp = string.sub(ARGV[2], 1, -3)
local limit = tonumber(ARGV[3])
local cfg = archcfg(4)
local oversized, aside = {}, {}
for i = 1, 8 do
	local id = redis.call("RPOPLPUSH", KEYS[1], KEYS[3])
	if not id then break end
	local key = ARGV[2] .. id
	local n = redis.call("HSTRLEN", key, "msg")
	if n > limit then
		redis.call("HSET", key, "state", "active")
		redis.call("ZADD", KEYS[4], ARGV[1], id)
		table.insert(oversized, id)
		break
	elseif n == 0 then
		setaside(qp, id, "missing", cfg.now, "pending")
		table.insert(aside, id)
	else
		redis.call("HSET", key, "state", "active")
		redis.call("HDEL", key, "pending_since")
		redis.call("ZADD", KEYS[4], ARGV[1], id)
		return {id, redis.call("HGET", key, "msg"), oversized, aside}
	end
end
if #oversized == 0 and #aside == 0 then return nil end
return {false, false, oversized, aside}
`)

// guardedDequeueBatch is guardedDequeue for up to ARGV[9] tasks of one
// queue in one call: it pops tasks as guardedDequeue does, until it holds
// ARGV[9] of them or their msgs would pass ARGV[10] bytes (it always takes
// one; a task that would pass the budget goes back to the head of the
// line). An oversized task is taken only by a call that has taken nothing
// else, and left active and leased for the Go side to archive, as
// guardedDequeue does. ARGV[1..8] are guardedDequeue's.
//
// ARGV[11] is the caller's receipt key ("" for none), ARGV[12] this call's
// token and ARGV[13] the receipt's lifetime in ms: the call records the
// IDs it took there ("<token> <id> <id> ..."), so that a caller whose
// reply is lost can claim them (claimBatch), and it does nothing when the
// receipt says "void <token>" (claimBatch ran first: the caller gave up on
// this call).
//
// It returns {{id, msg, id, msg, ...}, {oversized ids}, {set-aside ids}},
// or nil when the queue is paused, or empty with nothing set aside.
var guardedDequeueBatch = redis.NewScript(luaLib + `
local receipt, token = ARGV[11], ARGV[12]
if receipt ~= "" and redis.call("GET", receipt) == "void " .. token then return nil end
if redis.call("EXISTS", KEYS[2]) == 1 then return nil end
local qp = string.sub(ARGV[2], 1, -3)
local limit = tonumber(ARGV[3])
local cfg = archcfg(4)
local want = tonumber(ARGV[9])
local budget = tonumber(ARGV[10])
local got, oversized, aside = {}, {}, {}
local bytes = 0
for i = 1, want + 8 do
	if #got >= want * 2 then break end
	local id = redis.call("RPOPLPUSH", KEYS[1], KEYS[3])
	if not id then break end
	local key = ARGV[2] .. id
	local n = redis.call("HSTRLEN", key, "msg")
	if n > limit and #got > 0 then
		redis.call("LREM", KEYS[3], 1, id)
		redis.call("RPUSH", KEYS[1], id)
		break
	elseif n > limit then
		redis.call("HSET", key, "state", "active")
		redis.call("ZADD", KEYS[4], ARGV[1], id)
		table.insert(oversized, id)
		break
	elseif n == 0 then
		setaside(qp, id, "missing", cfg.now, "pending")
		table.insert(aside, id)
	elseif #got > 0 and bytes + n > budget then
		redis.call("LREM", KEYS[3], 1, id)
		redis.call("RPUSH", KEYS[1], id)
		break
	else
		redis.call("HSET", key, "state", "active")
		redis.call("HDEL", key, "pending_since")
		redis.call("ZADD", KEYS[4], ARGV[1], id)
		table.insert(got, id)
		table.insert(got, redis.call("HGET", key, "msg"))
		bytes = bytes + n
	end
end
if #got > 0 and receipt ~= "" then
	local rec = {token}
	for i = 1, #got, 2 do table.insert(rec, got[i]) end
	redis.call("SET", receipt, table.concat(rec, " "), "PX", ARGV[13])
end
if #got == 0 and #oversized == 0 and #aside == 0 then return nil end
return {got, oversized, aside}
`)

// claimBatch answers a batched dequeue whose reply was lost: KEYS[1] is the
// caller's receipt key, KEYS[2] asynq's lease set; ARGV the call's token, a
// lease expiry, the task key prefix and the receipt's lifetime in ms. When
// the call ran, it returns {id, msg, ...} for each task it took that is
// still leased (recovery has not moved it), each leased anew; a repeated
// claim returns them again. When it has not run, it voids the token, so
// that the call, should it still arrive, takes nothing, and returns nil.
var claimBatch = redis.NewScript(`
local v = redis.call("GET", KEYS[1])
if not v or string.match(v, "^%S+") ~= ARGV[1] then
	redis.call("SET", KEYS[1], "void " .. ARGV[1], "PX", ARGV[4])
	return nil
end
local out = {}
for id in string.gmatch(string.sub(v, #ARGV[1] + 2), "%S+") do
	if redis.call("ZSCORE", KEYS[2], id) then
		redis.call("ZADD", KEYS[2], ARGV[2], id)
		table.insert(out, id)
		table.insert(out, redis.call("HGET", ARGV[3] .. id, "msg"))
	end
end
return out
`)

// guardedListLeaseExpired is asynq's listing of lease-expired tasks with
// the guard: missing msgs are set aside, oversized ones listed apart,
// unread, for the Go side to archive (Guard.archive), and the reply holds at most ARGV[9] bytes of msgs (at least one msg), so that its
// size is bounded whatever the queue holds; the rest are listed at the
// recoverer's next run. ARGV[1..2] are asynq's, ARGV[3] the msg size limit,
// ARGV[4..8] the archive settings, ARGV[9] the reply budget. It returns
// {{id, msg, id, msg, ...}, {oversized ids}, {set-aside ids}}.
var guardedListLeaseExpired = redis.NewScript(luaLib + `
local qp = string.sub(ARGV[2], 1, -3)
local limit = tonumber(ARGV[3])
local cfg = archcfg(4)
local budget = tonumber(ARGV[9])
local res, oversized, aside = {}, {}, {}
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1])
for _, id in ipairs(ids) do
	local key = ARGV[2] .. id
	local n = redis.call("HSTRLEN", key, "msg")
	if n > limit then
		table.insert(oversized, id)
	elseif n == 0 then
		setaside(qp, id, "missing", cfg.now, "")
		table.insert(aside, id)
	elseif #res == 0 or n <= budget then
		table.insert(res, id)
		table.insert(res, redis.call("HGET", key, "msg"))
		budget = budget - n
	end
end
return {res, oversized, aside}
`)

// moveAside sets one task aside when its msg still has the length seen
// (-1: the hash does not exist): KEYS[1] is asynq's queue prefix key
// "asynq:{q}:" (declared for the slot), ARGV id, reason, now, length seen.
// It returns the size of the queue's quarantine after the move, 0 when the
// task changed meanwhile and was not moved.
var moveAside = redis.NewScript(luaLib + `
local key = KEYS[1] .. "t:" .. ARGV[1]
local seen = tonumber(ARGV[4])
if seen < 0 then
	if redis.call("HLEN", key) > 0 then return 0 end
elseif redis.call("HSTRLEN", key, "msg") ~= seen then
	return 0
end
setaside(KEYS[1], ARGV[1], ARGV[2], ARGV[3], "")
return redis.call("ZCARD", (qkeys(KEYS[1])))
`)

// quarantineSize returns the size of a queue's quarantine: KEYS[1] is
// asynq's queue prefix key "asynq:{q}:", for the slot.
var quarantineSize = redis.NewScript(luaLib + `
return redis.call("ZCARD", (qkeys(KEYS[1])))
`)

// archiveOversized archives one task when its msg is still larger than the
// limit: KEYS[1] the queue prefix key, ARGV id, limit, then the archive
// settings. It returns 1 when archived, 2 when the task is archived
// already (by an earlier call whose reply was lost, say), else 0.
var archiveOversized = redis.NewScript(luaLib + `
local key = KEYS[1] .. "t:" .. ARGV[1]
if redis.call("HGET", key, "state") == "archived" then return 2 end
local n = redis.call("HSTRLEN", key, "msg")
if n <= tonumber(ARGV[2]) then return 0 end
archive(KEYS[1], ARGV[1], n, tonumber(ARGV[2]), archcfg(3))
return 1
`)

// scanBatch reads, for each task ID in ARGV, the length of its msg (-1 when
// the hash does not exist): KEYS[1] is the queue prefix key. It uses HLEN
// rather than EXISTS, which asynq's dequeue uses for the pause check and
// tests count.
var scanBatch = redis.NewScript(`
local out = {}
for i, id in ipairs(ARGV) do
	local key = KEYS[1] .. "t:" .. id
	if redis.call("HLEN", key) == 0 then
		out[i] = -1
	else
		out[i] = redis.call("HSTRLEN", key, "msg")
	end
end
return out
`)
