-- Shared by every script; mod.rs puts it after each script's flags line.
--
-- Keys of one queue, all under the prefix K = "<prefix>:{<queue>}" (the
-- braces are the cluster hash tag, so every key of a queue is in one slot):
--   K:seq            counter: generated ids and the order of waiting jobs
--   K:jobs           hash id -> record "2|<priority>|<name>|<max attempts>|<timeout ms>|<backoff>|<trace>|<max deferrals>|<enqueued ms>|<payload>"
--                    (version 1 records, without max deferrals, still read)
--   K:j:<id>         hash of a job's changing state, made when it first runs or is delayed:
--                    n name, p priority, sc waiting score, x state (w d p a c f k),
--                    a attempts made, s times stalled, t started ms, d due ms, f finished ms, g progress,
--                    o worker and k attempt of the last settled ack, w worker running it,
--                    cx 1 once cancelled while running (state x k: cancelled),
--                    uq, ui, un the queue, id and child index of the flow's parent it reports to,
--                    pc children a flow's parent waits for, pf what a child's failure does (f i c)
--   K:df:<id>        list of "<ms>|<delay ms>|<reason>", one per deferral (an attempt given back uncounted)
--   K:e:<id>         list of "<attempt>|<ms>|<error>", one per failed attempt
--   K:w:<name>       zset of waiting jobs of one handler, score priority * 2^50 + seq
--   K:names          zset of handler names with waiting jobs, each scored by its first
--                    waiting job's score (a plain set in queues written before; the first
--                    script that checks it converts it)
--   K:delayed        zset id -> due ms
--   K:active:<w>     set of jobs worker w holds
--   K:workers        zset worker -> lease expiry ms
--   K:seen           ms of the last script that renewed or checked leases
--   K:completed      zset id -> finished ms (likewise K:failed, K:cancelled)
--   K:parents        zset of flows' parents waiting for their children (state p), score seq
--   K:kids:<id>      a parent's children as JSON [{queue, name}, ...]; child i's id is <queue of
--                    the parent>:<id>:<i>
--   K:ch:<id>        hash child index -> how it ended (c, c|<result>, f|<error>, k, m), at most once each
--   K:out            hash child id -> JSON [parent queue, parent id, index, outcome, ms]: reports of
--                    this queue's children that ended, until the parent's queue took them (notify.lua)
--   K:down           hash parent id -> "<ms>|<kids JSON>": parents that ended before their children,
--                    whose children that have not ended are yet to be cancelled
--   K:cx:<w>         list of running jobs of worker w cancelled and not yet told it
--   K:counts         hash "<state><priority>" -> number of jobs
--   K:tput           hash "c<minute>" / "f<minute>" -> jobs completed / failed for good in that
--                    minute (ms / 60,000), for the last three hours
--   K:winfo          hash worker -> what it said of itself when it started (JSON)
--   K:rl:<name>:<w>  jobs of a handler (name `*`: the whole queue) taken in rate-limit window w
--   K:s:<id>         hash of a schedule: n name, head (record up to the enqueued time), pl payload,
--                    spec, miss (skip | catch-up N), grace ms, ticks (comma-separated ms), last
--   K:sched          zset schedule id -> its next tick (its last tick when it has none left)
--   K:paused         present while the queue is paused
--   K:marker         list of at most one element, popped by idle workers' BLPOP
--   K:quiet          present while the queue keeps no events
--   K:events         stream of the queue's events, one entry per script: field e, a JSON array of
--                    [kind, id, name, ...] (a added, s started {attempt}, p progress {json},
--                    c completed {attempt, ms}, f failed {attempt, error, will retry 0/1},
--                    d deferred {delay ms, reason}, r retried, x stalled {will retry 0/1},
--                    m removed, k cancelled), trimmed to about EVENTS_KEPT entries
--
-- Redis does not roll a script back when it fails midway, so no script may
-- fail after its first write. Every script checks the types of the queue's
-- keys it writes before writing (a key of another type was written by
-- someone else and is named in the error), by a read it needs anyway
-- (`read`) or else by `TYPE` (`expect`), reads a job's own keys with
-- `redis.pcall`, and takes a job whose data is damaged or missing out of
-- the way with `quarantine`, into the failed set with the reason, rather
-- than stopping: no bad entry stops a queue.
local K = KEYS[1]
local PRIO = 1125899906842624 -- 2^50
-- Priorities as text, to write without printing a Lua number.
local PS = {[0] = '0', '1', '2', '3'}
-- Entries of K:events kept (approximately); watch::EVENTS_KEPT.
local EVENTS_KEPT = 10000

-- Lua would print large numbers as 1.2e+15; Redis needs every digit.
-- Every number printed this way is whole (times in ms, scores, counts),
-- and `%d` prints them for less than `%.0f`.
local function num(n)
  return string.format('%d', n)
end

-- Redis's clock, read once per script: a script runs in one instant.
local clock = nil
local function now_ms()
  if clock == nil then
    local t = redis.call('TIME')
    clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock
end

local TYPES = {
  [':seq'] = 'string', [':jobs'] = 'hash', [':names'] = 'zset', [':delayed'] = 'zset',
  [':workers'] = 'zset', [':seen'] = 'string', [':completed'] = 'zset', [':failed'] = 'zset',
  [':counts'] = 'hash', [':tput'] = 'hash', [':winfo'] = 'hash', [':sched'] = 'zset',
  [':cancelled'] = 'zset', [':parents'] = 'zset',
}

-- K:names as a plain set of names (as queues written before kept it)
-- becomes the zset of names by their first waiting job.
local function convert_names()
  local key = K .. ':names'
  local names = redis.call('SMEMBERS', key)
  redis.call('DEL', key)
  for _, name in ipairs(names) do
    local head = redis.pcall('ZRANGE', K .. ':w:' .. name, 0, 0, 'WITHSCORES')
    if type(head) == 'table' and head.err == nil and head[2] then
      redis.call('ZADD', key, head[2], name)
    end
  end
end

-- A pcall reply is a table with `err` when the command failed.
local function failed(reply)
  return type(reply) == 'table' and reply.err ~= nil
end

-- Runs `cmd` on `key`, a key the scripts keep for themselves: one of
-- another type is deleted and the command runs again. Returns the reply
-- and whether the key was replaced.
local function replacing(cmd, key, ...)
  local reply = redis.pcall(cmd, key, ...)
  if failed(reply) then
    redis.call('DEL', key)
    return redis.call(cmd, key, ...), true
  end
  return reply, false
end

-- Runs `cmd` on `first` (a key, or nil for none) and the items of `list`,
-- 500 at a time: Lua's `unpack` stops at the size of its stack. 500 is
-- even, so that scores and members stay in pairs.
local function in_chunks(cmd, first, list)
  for j = 1, #list, 500 do
    if first then
      redis.call(cmd, first, unpack(list, j, math.min(j + 499, #list)))
    else
      redis.call(cmd, unpack(list, j, math.min(j + 499, #list)))
    end
  end
end

-- Keys of the queue whose type this script has seen right, by `expect` or
-- by a `read` that worked: within one script only its own writes touch
-- them.
local typed = {}

-- Fails the script with an error that names queue key `suffix`, which
-- holds a `t`.
local function damaged(suffix, t)
  local key = K .. suffix
  error({err = 'DAMAGED key ' .. key .. ' holds a ' .. t .. ', not the ' .. TYPES[suffix]
    .. ' athyper keeps there; rename or delete it'})
end

-- Fails the script, before any write, if a key of the queue holds another
-- type than the scripts give it. Keys already typed cost nothing.
local function expect(...)
  for _, suffix in ipairs({...}) do
    if not typed[suffix] then
      local t = redis.call('TYPE', K .. suffix).ok
      if suffix == ':names' and t == 'set' then
        convert_names()
      elseif t ~= 'none' and t ~= TYPES[suffix] then
        damaged(suffix, t)
      end
      typed[suffix] = true
    end
  end
end

-- Runs read command `cmd` on queue key `suffix` and types the key with
-- it, so that a read the script needs anyway stands in for the `TYPE`
-- check of `expect`. Fails the script, naming the key, where it holds
-- another type; so a script reads a key this way before its first write,
-- or once `expect` has typed it.
local function read(suffix, cmd, ...)
  local key = K .. suffix
  local reply = redis.pcall(cmd, key, ...)
  if failed(reply) then
    local t = redis.call('TYPE', key).ok
    if suffix == ':names' and t == 'set' then
      convert_names()
      reply = redis.call(cmd, key, ...)
    elseif t ~= 'none' and t ~= TYPES[suffix] then
      damaged(suffix, t)
    else
      error(reply)
    end
  end
  typed[suffix] = true
  return reply
end

-- Jobs settled for good by this script, for the per-minute throughput.
local settled = {c = 0, f = 0}

-- Count changes are summed here, by state and then priority, and written
-- once per script.
local deltas = {}
local function delta(state, p, d)
  if state == nil or p == nil then
    return
  end
  local by_p = deltas[state]
  if by_p == nil then
    by_p = {}
    deltas[state] = by_p
  end
  p = tonumber(p) or p
  by_p[p] = (by_p[p] or 0) + d
end

-- Adds this script's settled jobs to the current minute, once per
-- script rather than per job. The first write of a minute drops minutes
-- older than three hours once the hash has grown past them.
local function tally()
  if settled.c + settled.f == 0 then
    return
  end
  local key = K .. ':tput'
  local minute = math.floor(now_ms() / 60000)
  local first = false
  for _, kind in ipairs({'c', 'f'}) do
    local n = settled[kind]
    if n > 0 then
      if replacing('HINCRBY', key, kind .. minute, n) == n then
        first = true
      end
    end
  end
  if first and redis.call('HLEN', key) > 400 then
    local stale = {}
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if (tonumber(string.sub(field, 2)) or 0) <= minute - 180 then
        stale[#stale + 1] = field
      end
    end
    in_chunks('HDEL', key, stale)
  end
  settled = {c = 0, f = 0}
end

-- This script's job events, written as one stream entry.
-- A queue with K:quiet keeps none (asked once per script).
local events = {}
local quiet = nil
local function emit(...)
  if quiet == nil then
    quiet = redis.call('EXISTS', K .. ':quiet') == 1
  end
  if not quiet then
    events[#events + 1] = {...}
  end
end

local function flush_events()
  if #events == 0 then
    return
  end
  local key = K .. ':events'
  replacing('XADD', key, 'MAXLEN', '~', EVENTS_KEPT, '*', 'e', cjson.encode(events))
  events = {}
end

local function flush_counts()
  for state, by_p in pairs(deltas) do
    for p, d in pairs(by_p) do
      if d ~= 0 then
        redis.call('HINCRBY', K .. ':counts', state .. (PS[p] or p), d)
      end
    end
  end
  deltas = {}
  tally()
  flush_events()
end

-- A hash that the scripts keep for the client to read (K:out, K:down):
-- one of another type is replaced.
local function client_hash(key)
  local t = redis.call('TYPE', key).ok
  if t ~= 'hash' and t ~= 'none' then
    redis.call('DEL', key)
  end
  return key
end

-- Entries this script left in K:out and K:down for the client, and the
-- children whose reports it wrote.
local reports = 0
local reported = {}

-- A job that ended for good (or was removed before it ended) reports to
-- its flow's parent, if it has one, through K:out.
local function report_up(id, outcome)
  local up = redis.pcall('HMGET', K .. ':j:' .. id, 'uq', 'ui', 'un')
  if failed(up) or not up[1] then
    return
  end
  redis.call('HSET', client_hash(K .. ':out'), id,
    cjson.encode({up[1], up[2], tonumber(up[3]) or 0, outcome, now_ms()}))
  reports = reports + 1
  reported[#reported + 1] = id
end

-- A parent that ended before its children: those that have not ended
-- are to be cancelled (the client does it, from K:down).
local function cascade(id)
  local kids = redis.pcall('GET', K .. ':kids:' .. id)
  if failed(kids) or not kids then
    return
  end
  redis.call('HSET', client_hash(K .. ':down'), id, num(now_ms()) .. '|' .. kids)
  reports = reports + 1
end

-- Lets one idle worker know that work may be waiting. The marker is a pure
-- signal: one of another type is replaced.
local function wake()
  local key = K .. ':marker'
  local len = redis.pcall('LLEN', key)
  if failed(len) then
    redis.call('DEL', key)
    len = 0
  end
  if len == 0 then
    redis.call('LPUSH', key, '1')
  end
end

-- Priority, name and attempts allowed, from a job record; nil for a record
-- that does not read.
local function header(record)
  if not record then
    return nil
  end
  local p, name, max = string.match(record, '^%d|(%d)|([^|]+)|(%d+)|')
  return tonumber(p), name, tonumber(max)
end

-- Fields of a job's state hash (false where missing), or nil if the hash
-- is of another type.
local function state_of(id, ...)
  local reply = redis.pcall('HMGET', K .. ':j:' .. id, ...)
  if failed(reply) then
    return nil
  end
  return reply
end

-- Ready to write a job's state hash: one of another type is dropped.
local function state_key(id, st)
  local jk = K .. ':j:' .. id
  if st == nil then
    redis.call('DEL', jk)
  end
  return jk
end

-- Appends to a job's error list, replacing one of another type.
local function push_error(id, entry)
  replacing('RPUSH', K .. ':e:' .. id, entry)
end

-- The highest score of each finished set, read from Redis once a script:
-- only `finish` adds to these sets.
local last_finished = {}

-- Reads the highest score of finished set `set` (`read`: it types the
-- set), unless this script has it.
local function finished_top(set)
  if last_finished[set] == nil then
    local top = read(set, 'ZRANGE', -1, -1, 'WITHSCORES')
    last_finished[set] = tonumber(top[2]) or -1
  end
end

-- Finished jobs not yet added to their sets: set -> {score, id, ...}.
local finishing = {}

-- Adds the finished jobs `finish` kept back to their sets.
local function flush_finished()
  for set, scored in pairs(finishing) do
    in_chunks('ZADD', K .. set, scored)
  end
  finishing = {}
end

-- Adds a finished job to its set, scored by finish time in ms. Jobs that
-- finish in the same millisecond get scores 1/1024 ms apart (exact in a
-- double), so trimming by count drops them in the order they finished,
-- not by id. With `later`, the write waits for `flush_finished`, so that
-- a step writes all its jobs of a set at once.
local function finish(set, id, now, later)
  finished_top(set)
  local last = last_finished[set]
  local score = now
  if last >= score then
    score = last + 1 / 1024
  end
  last_finished[set] = score
  if later then
    local list = finishing[set] or {}
    finishing[set] = list
    list[#list + 1] = string.format('%.17g', score)
    list[#list + 1] = id
  else
    redis.call('ZADD', K .. set, string.format('%.17g', score), id)
  end
end

-- Fails a job whose data is damaged or missing, with the reason, into the
-- failed set, writing what it needs to be listed and read (a placeholder
-- record if it has none). The caller has taken it out of `from` (a state
-- code, or nil if it was counted nowhere), where it was counted at
-- priority `known_p` if the caller knows it.
local function quarantine(id, reason, from, now, known_p)
  local record = redis.call('HGET', K .. ':jobs', id)
  local st = state_of(id, 'n', 'p', 'a')
  local hp, hn = header(record)
  local p = known_p or (st and tonumber(st[2])) or hp
  if p == nil and from ~= nil then
    -- Nothing says where it was counted: take it off a priority that
    -- still counts one in `from`, so that the totals stay right.
    for q = 0, 3 do
      local key = from .. q
      local pending = (deltas[from] and deltas[from][q]) or 0
      if p == nil and (tonumber(redis.call('HGET', K .. ':counts', key)) or 0) + pending > 0 then
        p = q
      end
    end
  end
  p = p or 3
  local name = (st and st[1]) or hn or '?'
  if not record then
    redis.call('HSET', K .. ':jobs', id, '2|' .. p .. '|' .. name .. '|1||f0,0,n||0|' .. num(now) .. '|null')
  end
  local attempt = ((st and tonumber(st[3])) or 0) + 1
  push_error(id, attempt .. '|' .. num(now) .. '|job data damaged in Redis: ' .. reason)
  emit('f', id, name, attempt, 'job data damaged in Redis: ' .. reason, 0)
  redis.call('HSET', state_key(id, st), 'n', name, 'p', p, 'x', 'f', 'f', num(now))
  finish(':failed', id, now)
  delta(from, p, -1)
  delta('f', p, 1)
  settled.f = settled.f + 1
  report_up(id, 'f|job data damaged in Redis: ' .. reason)
end

-- Adds a job to its handler's waiting set. False, having written nothing,
-- if that set is of another type.
local function to_waiting(id, name, score)
  if failed(redis.pcall('ZADD', K .. ':w:' .. name, num(score), id)) then
    return false
  end
  redis.call('ZADD', K .. ':names', 'LT', num(score), name)
  return true
end

-- Scores `name` in K:names by its first waiting job again, after jobs left
-- its waiting set; a name with none left goes. Returns whether it has any.
local function refresh_head(name)
  local head = redis.pcall('ZRANGE', K .. ':w:' .. name, 0, 0, 'WITHSCORES')
  if failed(head) or not head[2] then
    redis.call('ZREM', K .. ':names', name)
    return false
  end
  redis.call('ZADD', K .. ':names', head[2], name)
  return true
end

-- Whether a job of `name` can be added to its waiting set (none, or a
-- sorted set).
local function to_waiting_ok(name)
  local t = redis.call('TYPE', K .. ':w:' .. name).ok
  return t == 'none' or t == 'zset'
end

-- Keys of dropped jobs, deleted together by `flush_dropped`.
local dropped = {}

-- Deletes the keys `drop_keys` noted.
local function flush_dropped()
  in_chunks('DEL', nil, dropped)
  dropped = {}
end

-- Notes the keys of job `id` but its record for `flush_dropped`.
-- `parent` false says it is known to have no children (a flow's parent
-- keeps them in K:kids and K:ch), which saves deleting keys that are not
-- there.
local function drop_keys(id, parent)
  dropped[#dropped + 1] = K .. ':j:' .. id
  dropped[#dropped + 1] = K .. ':e:' .. id
  dropped[#dropped + 1] = K .. ':df:' .. id
  if parent ~= false then
    dropped[#dropped + 1] = K .. ':kids:' .. id
    dropped[#dropped + 1] = K .. ':ch:' .. id
  end
end

-- The priority a job is counted at, from its state or else its record.
local function priority_of(id)
  local st = state_of(id, 'p')
  return (st and tonumber(st[1])) or (header(redis.call('HGET', K .. ':jobs', id)))
end

-- Removes a job and its keys; `state` is where it was counted, at
-- priority `p` where the caller knows it.
local function drop(id, state, p, parent)
  p = p or priority_of(id)
  redis.call('HDEL', K .. ':jobs', id)
  drop_keys(id, parent)
  flush_dropped()
  delta(state, p, -1)
end

-- Removes jobs `ids` (counted in `state`) as `drop` does, with one `HDEL`
-- for their records; their other keys go at `flush_dropped`.
local function drop_many(ids, state)
  for _, id in ipairs(ids) do
    delta(state, priority_of(id), -1)
    drop_keys(id)
  end
  in_chunks('HDEL', K .. ':jobs', ids)
end

-- Puts a job that left `from` back to waiting without counting an attempt,
-- in its old place when it has one, or quarantines it if its data is gone.
-- Takes job `id` out of the set of its idle state (w d p c f k).
local function unlist(id, state, name)
  if state == 'w' then
    if name and not failed(redis.pcall('ZREM', K .. ':w:' .. name, id)) then
      refresh_head(name)
    end
  else
    local sets = {d = ':delayed', c = ':completed', k = ':cancelled', p = ':parents'}
    redis.call('ZREM', K .. (sets[state] or ':failed'), id)
  end
end

-- Ends job `id` (name, priority p, counted in `from`) as cancelled.
local function end_cancelled(id, st, name, p, from, now)
  redis.call('HSET', state_key(id, st), 'n', name, 'p', p, 'x', 'k', 'f', num(now))
  finish(':cancelled', id, now)
  delta(from, p, -1)
  delta('k', p, 1)
  emit('k', id, name)
  report_up(id, 'k')
end

local function put_back(id, from, now)
  local record = redis.call('HGET', K .. ':jobs', id)
  if not record then
    quarantine(id, 'its record is missing', from, now)
    return
  end
  local st = state_of(id, 'n', 'p', 'sc', 'cx')
  local hp, hn = header(record)
  local name = (st and st[1]) or hn
  local p = (st and tonumber(st[2])) or hp
  if not name or not p then
    quarantine(id, 'its record does not read', from, now, p)
    return
  end
  if st and st[4] == '1' then
    -- Cancelled while it ran: it does not run again.
    end_cancelled(id, st, name, p, from, now)
    return
  end
  local score = (st and tonumber(st[3])) or (p * PRIO + redis.call('INCR', K .. ':seq'))
  if not to_waiting(id, name, score) then
    quarantine(id, 'the waiting set of `' .. name .. '` is damaged', from, now, p)
    return
  end
  redis.call('HSET', state_key(id, st), 'x', 'w', 'n', name, 'p', p, 'sc', num(score))
  delta(from, p, -1)
  delta('w', p, 1)
end

-- The members of a worker's active set, in the order they were waiting; a
-- set of another type is dropped.
local function held_by(worker)
  local key = K .. ':active:' .. worker
  local ids = redis.pcall('SMEMBERS', key)
  if failed(ids) then
    redis.call('DEL', key)
    return {}
  end
  local scored = {}
  for _, id in ipairs(ids) do
    local st = state_of(id, 'sc')
    scored[#scored + 1] = {(st and tonumber(st[1])) or 0, id}
  end
  table.sort(scored, function(a, b) return a[1] < b[1] end)
  local out = {}
  for i, pair in ipairs(scored) do
    out[i] = pair[2]
  end
  return out
end

-- Time during which no worker reached Redis (Redis was down, or every
-- worker was cut off) does not count against leases. Lease scripts note
-- when they ran; after a gap longer than half the caller's lease (live
-- workers renew every third of theirs), every lease moves on by the gap,
-- so that live workers get the time to renew before any is taken for dead.
-- `seen` is what K:seen holds, read by the caller.
local function observe(now, lease, seen)
  local key = K .. ':seen'
  local last = tonumber(seen)
  if last and now - last > lease / 2 then
    local leases = redis.call('ZRANGE', K .. ':workers', 0, -1, 'WITHSCORES')
    for i = 1, #leases, 2 do
      redis.call('ZADD', K .. ':workers', num(tonumber(leases[i + 1]) + now - last), leases[i])
    end
  end
  -- Noted again only when it moved on by a little: busy workers run this
  -- many times a millisecond, and the gap it looks for is far longer.
  if not last or now - last >= math.min(50, lease / 8) then
    redis.call('SET', key, num(now))
  end
end

-- Everything known of one job, or nil if it has no record.
local function info(id)
  local record = redis.call('HGET', K .. ':jobs', id)
  if not record then
    return nil
  end
  local fields = redis.pcall('HGETALL', K .. ':j:' .. id)
  if failed(fields) then
    fields = {}
  end
  local state = 'w'
  for i = 1, #fields, 2 do
    if fields[i] == 'x' then
      state = fields[i + 1]
    end
  end
  local errors = redis.pcall('LRANGE', K .. ':e:' .. id, 0, -1)
  if failed(errors) then
    errors = {}
  end
  local deferrals = redis.pcall('LRANGE', K .. ':df:' .. id, 0, -1)
  if failed(deferrals) then
    deferrals = {}
  end
  return {id, record, state, fields, errors, deferrals}
end

-- The next number of K:seq; a script that takes them in a block sets its
-- own.
local next_seq = function()
  return redis.call('INCR', K .. ':seq')
end

-- Stores a new job unless one with this id exists; returns whether it was
-- made. `head` is the record up to the enqueued time; a generated id is
-- taken from the sequence when `id` is empty. The waiting set was checked.
-- `flow`, if given, is {parent queue, parent id, index, children, policy,
-- kids JSON} ('' and 0 where it has no parent or no children).
local function new_job(id, name, p, delay, head, payload, now, flow)
  if id ~= '' and redis.call('HEXISTS', K .. ':jobs', id) == 1 then
    return id, 0
  end
  local seq = next_seq()
  if id == '' then
    id = num(seq)
  else
    -- A caller's id may name a job that was removed: its old keys go.
    redis.call('DEL', K .. ':j:' .. id, K .. ':e:' .. id, K .. ':df:' .. id)
  end
  redis.call('HSET', K .. ':jobs', id, head .. num(now) .. '|' .. payload)
  if flow and flow[1] ~= '' then
    redis.call('HSET', K .. ':j:' .. id, 'n', name, 'p', p, 'uq', flow[1], 'ui', flow[2], 'un', flow[3])
  end
  if flow and (tonumber(flow[4]) or 0) > 0 then
    redis.call('HSET', K .. ':j:' .. id, 'n', name, 'p', p, 'x', 'p', 'pc', flow[4], 'pf', flow[5])
    redis.call('SET', K .. ':kids:' .. id, flow[6])
    redis.call('ZADD', K .. ':parents', seq, id)
    delta('p', p, 1)
  elseif delay > 0 then
    local due = num(now + delay)
    redis.call('ZADD', K .. ':delayed', due, id)
    redis.call('HSET', K .. ':j:' .. id, 'n', name, 'p', p, 'x', 'd', 'd', due)
    delta('d', p, 1)
  else
    to_waiting(id, name, p * PRIO + seq)
    delta('w', p, 1)
  end
  emit('a', id, name)
  return id, 1
end

-- Up to `count` ids of jobs in `state` from `offset`: waiting and delayed
-- in the order they will run, active by priority and age, finished newest
-- first.
local function ids_in(state, offset, count)
  local ids = {}
  if count <= 0 then
    return ids
  end
  if state == 'w' then
    local scored = {}
    for _, name in ipairs(redis.call('ZRANGE', K .. ':names', 0, -1)) do
      local r = redis.pcall('ZRANGE', K .. ':w:' .. name, 0, offset + count - 1, 'WITHSCORES')
      if not failed(r) then
        for j = 1, #r, 2 do
          scored[#scored + 1] = {tonumber(r[j + 1]), r[j]}
        end
      end
    end
    table.sort(scored, function(a, b) return a[1] < b[1] end)
    for j = offset + 1, math.min(offset + count, #scored) do
      ids[#ids + 1] = scored[j][2]
    end
  elseif state == 'a' then
    local scored = {}
    for _, worker in ipairs(redis.call('ZRANGE', K .. ':workers', 0, -1)) do
      local members = redis.pcall('SMEMBERS', K .. ':active:' .. worker)
      if not failed(members) then
        for _, id in ipairs(members) do
          local st = state_of(id, 'sc')
          scored[#scored + 1] = {(st and tonumber(st[1])) or 0, id}
        end
      end
    end
    table.sort(scored, function(a, b) return a[1] < b[1] end)
    for j = offset + 1, math.min(offset + count, #scored) do
      ids[#ids + 1] = scored[j][2]
    end
  elseif state == 'd' then
    ids = redis.call('ZRANGE', K .. ':delayed', offset, offset + count - 1)
  elseif state == 'p' then
    ids = redis.call('ZRANGE', K .. ':parents', offset, offset + count - 1)
  else
    local set = (state == 'c' and ':completed') or (state == 'k' and ':cancelled') or ':failed'
    ids = redis.call('ZREVRANGE', K .. set, offset, offset + count - 1)
  end
  return ids
end
