-- One worker step: settle acks, renew the lease, promote due delayed jobs,
-- take up to `max` waiting jobs.
-- ARGV: worker, lease ms, max, keep completed (count, age ms), keep failed
-- (count, age ms) (-1: no bound), number of limits, then (name, cap) pairs,
-- number of rates, then (name, max, window ms) triples, the queue's rate
-- (max, window ms; -1 -1: none), number of acks, then (id, kind c|f|r,
-- attempt, ms (retry or deferral; -1: none), text (the result, an error or
-- a reason), number (for a completion 1 if it has a result, for a deferral
-- the most deferrals)).
-- Returns {lost ids, paused, ms to the next due job or tick (-1: none), now,
-- jobs {id, record, attempts made, stalled, due ms}, lease was held (1/0),
-- ms until a rate limit's window ends (-1: none held jobs back),
-- refills {schedule id, spec, after ms}, children whose reports it left in K:out}.
local now = now_ms()
-- Printed once: Lua prints numbers through the C library's float formatting.
local now_s = num(now)
local worker = ARGV[1]
local lease = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local keep_c, keep_c_age = tonumber(ARGV[4]), tonumber(ARGV[5])
local keep_f, keep_f_age = tonumber(ARGV[6]), tonumber(ARGV[7])
local i = 8
local caps = {}
for _ = 1, tonumber(ARGV[i]) do
  caps[ARGV[i + 1]] = tonumber(ARGV[i + 2])
  i = i + 2
end
i = i + 1
local rates = {}
for _ = 1, tonumber(ARGV[i]) do
  rates[ARGV[i + 1]] = {tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])}
  i = i + 3
end
local queue_rate = nil
if tonumber(ARGV[i + 1]) >= 0 then
  queue_rate = {tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])}
end
i = i + 3
-- The acks, as where each one's six arguments start, and their ids.
local acks, ack_ids = {}, {}
local completions, others = false, false
for k = 1, tonumber(ARGV[i]) do
  acks[k] = i
  ack_ids[k] = ARGV[i + 1]
  if ARGV[i + 2] == 'c' then
    completions = true
  else
    others = true
  end
  i = i + 6
end

-- What the step reads anyway comes first, and types the keys it reads
-- (see `read`); `expect` checks the rest before the first write.
local held = read(':workers', 'ZSCORE', worker) and 1 or 0
local seen = read(':seen', 'GET')
local first = read(':delayed', 'ZRANGE', 0, 0, 'WITHSCORES')
local tick = read(':sched', 'ZRANGE', 0, 0, 'WITHSCORES')
local paused = redis.call('EXISTS', K .. ':paused')
local fetching = paused == 0 and max > 0
-- Names with waiting jobs, by the score of each one's first job; read
-- again below if this step makes jobs wait.
local heads = fetching and read(':names', 'ZRANGE', 0, -1, 'WITHSCORES') or nil
-- Each ack's state, read before a completion that keeps nothing drops its
-- keys (a flow's child reports from it how it ended).
local states = {}
for k, id in ipairs(ack_ids) do
  local st = state_of(id, 'p', 'n', 't', 'cx', 'uq', 'pc')
  if st and st[4] == '1' then
    finished_top(':cancelled')
  end
  states[k] = st or false
end
if completions and keep_c ~= 0 then
  finished_top(':completed')
end
local due_now = (first[2] and tonumber(first[2]) <= now) or (tick[2] and tonumber(tick[2]) <= now)
if others then
  -- Failures and deferrals go to the failed and delayed sets, and may be
  -- due at once.
  finished_top(':failed')
  due_now = true
end
if due_now then
  expect(':seq', ':names')
end
expect(':jobs', ':failed', ':counts')

observe(now, lease, seen)

-- The acks: whether this worker holds each job, asked of its active set
-- at once (a set of another type is dropped: the worker holds nothing).
local active = K .. ':active:' .. worker
local holds = {}
-- One ack (as at concurrency 1) is one command.
if #acks == 1 then
  holds[1] = replacing('SREM', active, ack_ids[1]) == 1
elseif #acks > 1 then
  local gone = {}
  for j = 1, #ack_ids, 500 do
    local member = replacing('SMISMEMBER', active, unpack(ack_ids, j, math.min(j + 499, #ack_ids)))
    for k = 1, #member do
      holds[j + k - 1] = member[k] == 1
      if member[k] == 1 then
        gone[#gone + 1] = ack_ids[j + k - 1]
      end
    end
  end
  in_chunks('SREM', active, gone)
end

local lost = {}
local trim_c, trim_f = false, false
-- The earliest due time this step gives a delayed job.
local delayed_at = nil
local function delay(id, due)
  redis.call('ZADD', K .. ':delayed', due, id)
  local at = tonumber(due)
  if delayed_at == nil or at < delayed_at then
    delayed_at = at
  end
end
-- Ids settled by an ack of this step: another ack of one is a repeat.
local settled_here = {}
-- Records of completed jobs that keep nothing.
local completed_records = {}
for k, at in ipairs(acks) do
  -- id, kind c|f|r, attempt, ms, text, number (see the top); numbers are
  -- read where a branch needs them.
  local id, kind, attempt_s, err = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 5]
  local st = states[k] or nil
  local child = st and st[5]
  if settled_here[id] then
    -- Sent twice in one step: settled by the first.
  elseif not holds[k] then
    -- Not this worker's: it settled this very attempt before (the reply
    -- was lost and the ack is sent again), the job is gone, or recovery
    -- took it back and it runs elsewhere.
    local settled_by = st and state_of(id, 'o', 'k')
    local repeated = settled_by and settled_by[1] == worker and tonumber(settled_by[2]) == tonumber(attempt_s)
    if not repeated and redis.call('HEXISTS', K .. ':jobs', id) == 1 then
      lost[#lost + 1] = id
    end
  else
    settled_here[id] = true
    local p = st and tonumber(st[1])
    local name = st and st[2]
    local cancelled = st and st[4] == '1'
    local record, allowed
    if kind == 'c' and p and name and not cancelled and keep_c == 0 then
      -- Dropped with the step's others in one `HDEL` below. The step that
      -- took the job read its record, and no script removes a running
      -- job's; were one missing, the job completed all the same.
      completed_records[#completed_records + 1] = id
      record = true
    elseif kind == 'c' and p and name then
      -- A completion needs no more of the record than that it is there.
      record = redis.call('HEXISTS', K .. ':jobs', id) == 1
    else
      local hp, hn
      record = redis.call('HGET', K .. ':jobs', id)
      hp, hn, allowed = header(record)
      p = p or hp
      name = name or hn
    end
    if not record or not p or not name then
      quarantine(id, record and 'its record does not read' or 'its record is missing', 'a', now, p)
    elseif cancelled then
      -- Cancelled while it ran: whatever the attempt came to.
      redis.call('HSET', state_key(id, st), 'a', attempt_s, 'k', attempt_s, 'o', worker)
      end_cancelled(id, st, name, p, 'a', now)
    elseif kind == 'c' then
      delta('a', p, -1)
      -- The last argument says whether the handler gave a result.
      local has_result = ARGV[at + 6] == '1'
      if child then
        report_up(id, has_result and ('c|' .. err) or 'c')
      end
      if keep_c == 0 then
        -- Its record went above; its other keys go with the step's
        -- (no flow's children to drop unless it waited for some).
        drop_keys(id, not st or st[6] ~= false)
      else
        local jk = state_key(id, st)
        local fields = {'a', attempt_s, 'k', attempt_s, 'o', worker, 'x', 'c', 'f', now_s}
        if not (st and st[1] and st[2]) then
          -- Its name and priority come from the record.
          fields[#fields + 1], fields[#fields + 2] = 'n', name
          fields[#fields + 1], fields[#fields + 2] = 'p', PS[p] or p
        end
        if has_result then
          fields[#fields + 1], fields[#fields + 2] = 'r', err
        end
        redis.call('HSET', jk, unpack(fields))
        finish(':completed', id, now, true)
        delta('c', p, 1)
        trim_c = true
      end
      local started = st and tonumber(st[3])
      emit('c', id, name, attempt_s, started and math.max(0, now - started) or 0)
      settled.c = settled.c + 1
    elseif kind == 'r' then
      -- Given back uncounted, unless it was given back too often.
      local attempt, retry, max_deferrals = tonumber(attempt_s), tonumber(ARGV[at + 4]), tonumber(ARGV[at + 6])
      delta('a', p, -1)
      local dk = K .. ':df:' .. id
      local n = redis.pcall('LLEN', dk)
      if failed(n) then
        redis.call('DEL', dk)
        n = 0
      end
      local jk = state_key(id, st)
      if n >= max_deferrals then
        local why = 'deferred more than ' .. max_deferrals
          .. ' times without running to an end; the last deferral: ' .. err
        push_error(id, attempt .. '|' .. now_s .. '|' .. why)
        emit('f', id, name, attempt, why, 0)
        if child then
          report_up(id, 'f|' .. why)
        end
        redis.call('HSET', jk, 'n', name, 'p', p, 'a', attempt, 'k', attempt, 'o', worker, 'x', 'f', 'f', now_s)
        finish(':failed', id, now)
        delta('f', p, 1)
        settled.f = settled.f + 1
        trim_f = true
      else
        redis.call('RPUSH', dk, now_s .. '|' .. num(retry) .. '|' .. err)
        emit('d', id, name, retry, err)
        local due = num(now + retry)
        redis.call('HSET', jk, 'n', name, 'p', p, 'a', attempt - 1, 'k', attempt, 'o', worker, 'x', 'd', 'd', due)
        delay(id, due)
        delta('d', p, 1)
      end
    else
      local attempt, retry = tonumber(attempt_s), tonumber(ARGV[at + 4])
      delta('a', p, -1)
      push_error(id, attempt_s .. '|' .. now_s .. '|' .. err)
      local jk = state_key(id, st)
      local again = retry >= 0 and allowed ~= nil and attempt < allowed
      emit('f', id, name, attempt, err, again and 1 or 0)
      if again then
        local due = num(now + retry)
        redis.call('HSET', jk, 'n', name, 'p', p, 'a', attempt, 'k', attempt, 'o', worker, 'x', 'd', 'd', due)
        delay(id, due)
        delta('d', p, 1)
      else
        redis.call('HSET', jk, 'n', name, 'p', p, 'a', attempt, 'k', attempt, 'o', worker, 'x', 'f', 'f', now_s)
        finish(':failed', id, now)
        delta('f', p, 1)
        settled.f = settled.f + 1
        trim_f = true
        if child then
          report_up(id, 'f|' .. err)
        end
      end
    end
  end
end
in_chunks('HDEL', K .. ':jobs', completed_records)
flush_dropped()
flush_finished()
if delayed_at and (not first[2] or delayed_at < tonumber(first[2])) then
  -- The delayed set's first entry is now one of this step's.
  first = {'', num(delayed_at)}
end

-- Drops the oldest finished jobs beyond a count and an age (-1: no bound).
local function trim(state, set, keep_count, keep_age)
  local key = K .. set
  if keep_count >= 0 then
    local over = redis.call('ZCARD', key) - keep_count
    if over > 0 then
      local gone = redis.call('ZPOPMIN', key, over)
      local ids = {}
      for j = 1, #gone, 2 do
        ids[#ids + 1] = gone[j]
      end
      drop_many(ids, state)
    end
  end
  if keep_age >= 0 then
    local old = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. num(now - keep_age), 'LIMIT', 0, 1000)
    if #old > 0 then
      in_chunks('ZREM', key, old)
      drop_many(old, state)
    end
  end
end
if trim_c then
  trim('c', ':completed', keep_c, keep_c_age)
end
if trim_f then
  trim('f', ':failed', keep_f, keep_f_age)
end
flush_dropped()

redis.call('ZADD', K .. ':workers', num(now + lease), worker)

-- Schedules' due ticks make their jobs (ids derived from the tick, so
-- however many workers fetch, one job per tick), as the missed-tick policy
-- says; a schedule low on ticks asks for more.
local refills = {}
local function split(csv)
  local out = {}
  for t in string.gmatch(csv or '', '[^,]+') do
    out[#out + 1] = tonumber(t)
  end
  return out
end
-- Up to `limit` entries of the sorted set `set` due by now, given its
-- first entry, read at the start: most steps find none due.
local function due_in(set, limit, head)
  if head[2] and tonumber(head[2]) <= now then
    return redis.call('ZRANGEBYSCORE', K .. set, '-inf', now_s, 'LIMIT', 0, limit)
  end
  return {}
end
local due_ticks = due_in(':sched', 100, tick)
for _, sid in ipairs(due_ticks) do
  local sk = K .. ':s:' .. sid
  local s = redis.pcall('HMGET', sk, 'n', 'head', 'pl', 'spec', 'miss', 'grace', 'ticks', 'last')
  if failed(s) or not s[1] or not s[2] then
    -- Not a schedule of ours any more: forget its entry.
    redis.call('ZREM', K .. ':sched', sid)
  else
    local ticks = split(s[7])
    local grace = tonumber(s[6]) or 0
    local catch_up = 0
    if s[5] and string.sub(s[5], 1, 9) == 'catch-up ' then
      catch_up = tonumber(string.sub(s[5], 10)) or 0
    end
    local late, on_time, rest = {}, {}, {}
    local last = tonumber(s[8])
    for _, t in ipairs(ticks) do
      if t > now then
        rest[#rest + 1] = t
      else
        last = t
        if now - t > grace then
          late[#late + 1] = t
        else
          on_time[#on_time + 1] = t
        end
      end
    end
    local run = {}
    for j = math.max(1, #late - catch_up + 1), #late do
      run[#run + 1] = late[j]
    end
    for _, t in ipairs(on_time) do
      run[#run + 1] = t
    end
    local p, name = header(s[2])
    if p and name and to_waiting_ok(name) then
      for _, t in ipairs(run) do
        new_job(sid .. '@' .. num(t), name, p, 0, s[2], s[3], now)
      end
    end
    local csv = {}
    for j, t in ipairs(rest) do
      csv[j] = num(t)
    end
    redis.call('HSET', sk, 'ticks', table.concat(csv, ','), 'last', last and num(last) or '')
    redis.call('ZADD', K .. ':sched', num(rest[1] or last or now), sid)
    if #rest < 4 then
      refills[#refills + 1] = {sid, s[4] or '', num(rest[#rest] or last or now)}
    end
  end
end

-- Due jobs join the back of their priority; at most 1,000 a step keeps
-- the script short, the next step promotes the rest.
local due = due_in(':delayed', 1000, first)
in_chunks('ZREM', K .. ':delayed', due)
for _, id in ipairs(due) do
  local st = state_of(id, 'n', 'p')
  local record = redis.call('HGET', K .. ':jobs', id)
  local hp, hn = header(record)
  local name = (st and st[1]) or hn
  local p = (st and tonumber(st[2])) or hp
  if not record or not name or not p then
    quarantine(id, record and 'its record does not read' or 'its record is missing', 'd', now, p)
  else
    local score = p * PRIO + redis.call('INCR', K .. ':seq')
    if to_waiting(id, name, score) then
      redis.call('HSET', state_key(id, st), 'n', name, 'p', p, 'x', 'w', 'sc', num(score))
      delta('d', p, -1)
      delta('w', p, 1)
    else
      quarantine(id, 'the waiting set of `' .. name .. '` is damaged', 'd', now, p)
    end
  end
end
if fetching and (#due > 0 or #due_ticks > 0) then
  -- This step made jobs wait: the names' heads may have moved.
  heads = redis.call('ZRANGE', K .. ':names', 0, -1, 'WITHSCORES')
end

local jobs = {}
-- Rate limits count in fixed windows of Redis's clock.
local limited = -1
local function hold(until_ms)
  if limited < 0 or until_ms < limited then
    limited = until_ms
  end
end
local function window(key_name, limit)
  local w = math.floor(now / limit[2])
  local key = K .. ':rl:' .. key_name .. ':' .. w
  local used = redis.pcall('GET', key)
  if failed(used) then
    redis.call('DEL', key)
    used = 0
  end
  return math.max(0, limit[1] - (tonumber(used) or 0)), key, (w + 1) * limit[2]
end
local function count(key, n, limit)
  if n > 0 then
    redis.call('INCRBY', key, n)
    redis.call('PEXPIRE', key, limit[2] * 2)
  end
end
if fetching then
  local queue_key, queue_end
  if queue_rate then
    local left
    left, queue_key, queue_end = window('*', queue_rate)
    if left < max then
      if #heads > 0 then
        hold(queue_end)
      end
      max = left
    end
  end
  -- {head score, name, how many more it may give, how many it gave}
  local lines = {}
  local rated = {}
  for j = 1, #heads, 2 do
    local name = heads[j]
    local cap = caps[name] or max
    if cap > max then
      cap = max
    end
    local limit = rates[name]
    if limit and cap > 0 then
      local left, key, ends = window(name, limit)
      if left <= cap then
        cap = left
        rated[name] = {key, limit, ends, left}
      end
    end
    if cap > 0 then
      lines[#lines + 1] = {tonumber(heads[j + 1]), name, cap, 0}
    end
  end
  -- A merge of the names' waiting sets by score: the name whose first job
  -- is best gives its jobs up to the next name's first, then that one,
  -- and so on. Each step reads only what it takes, and then the one job
  -- after (to know where the name goes on), so a fetch costs what it
  -- takes, not what waits under other names.
  -- The jobs to take, in order: their ids, names and scores (as text).
  local c_id, c_name, c_score = {}, {}, {}
  local candidates = 0
  -- Per name, the score (as text) of the first job after those taken,
  -- false if none is left, where a read saw it: its head once they go.
  local after_taken = {}
  -- Names this step took out of K:names.
  local gone_names = 0
  local steps = 0
  while candidates < max and #lines > 0 and steps < max + #heads do
    steps = steps + 1
    local line = table.remove(lines, 1)
    local name, offset = line[2], line[4]
    local key = K .. ':w:' .. name
    local want = math.min(max - candidates, line[3])
    local bound = lines[1] and lines[1][1]
    local r
    if bound then
      r = redis.pcall('ZRANGEBYSCORE', key, '-inf', '(' .. num(bound), 'WITHSCORES', 'LIMIT', offset, want)
    else
      -- One more than it takes: the name's head once they go.
      r = redis.pcall('ZRANGE', key, offset, offset + want, 'WITHSCORES')
    end
    if failed(r) then
      -- Not a waiting set of ours: skip the name rather than stop.
      redis.call('ZREM', K .. ':names', name)
      gone_names = gone_names + 1
    else
      local took = math.min(#r / 2, want)
      for j = 1, took * 2, 2 do
        candidates = candidates + 1
        c_id[candidates], c_name[candidates], c_score[candidates] = r[j], name, r[j + 1]
      end
      line[3], line[4] = line[3] - took, offset + took
      if not bound then
        after_taken[name] = r[took * 2 + 2] or false
      elseif line[3] <= 0 then
        after_taken[name] = nil
      else
        local after = redis.call('ZRANGE', key, line[4], line[4], 'WITHSCORES')
        after_taken[name] = after[2] or false
        if after[2] then
          line[1] = tonumber(after[2])
          local at = 1
          while lines[at] and lines[at][1] < line[1] do
            at = at + 1
          end
          table.insert(lines, at, line)
        end
      end
    end
  end
  local taken = {}
  local started = {}
  local count_taken = math.min(max, candidates)
  -- The records of the jobs taken, read at once.
  local records = {}
  for j = 1, count_taken, 500 do
    local ids = {}
    for c = j, math.min(j + 499, count_taken) do
      ids[#ids + 1] = c_id[c]
    end
    local r = redis.call('HMGET', K .. ':jobs', unpack(ids))
    for c = 1, #r do
      records[j + c - 1] = r[c]
    end
  end
  for j = 1, count_taken do
    local id, name, score_s = c_id[j], c_name[j], c_score[j]
    local score = tonumber(score_s)
    local p = math.floor(score / PRIO)
    taken[name] = taken[name] or {}
    local list = taken[name]
    list[#list + 1] = id
    local record = records[j]
    if not record then
      quarantine(id, 'its record is missing', 'w', now, p)
    else
      local jk = K .. ':j:' .. id
      local made, replaced = replacing('HSET', jk, 'n', name, 'p', PS[p] or num(p), 'sc', score_s, 'x', 'a',
        't', now_s, 'w', worker)
      local st = {}
      if not replaced and made < 6 then
        -- Fields were there. Where all six are new, the job never ran nor
        -- waited delayed: each write of its attempts, stalls or due time
        -- also writes its state `x`.
        st = redis.call('HMGET', jk, 'a', 's', 'd')
      end
      started[#started + 1] = id
      jobs[#jobs + 1] = {id, record, st[1] or '0', st[2] or '0', st[3] or ''}
      -- The attempt it starts (as text where it is the first).
      emit('s', id, name, st[1] and (tonumber(st[1]) or 0) + 1 or '1')
      delta('w', p, -1)
      delta('a', p, 1)
    end
  end
  -- An active set of another type is replaced: the worker held nothing.
  for j = 1, #started, 500 do
    replacing('SADD', active, unpack(started, j, math.min(j + 499, #started)))
  end
  local names_left = #heads / 2 - gone_names
  local taken_total = 0
  for name, ids in pairs(taken) do
    local key = K .. ':w:' .. name
    in_chunks('ZREM', key, ids)
    taken_total = taken_total + #ids
    local r = rated[name]
    if r then
      count(r[1], #ids, r[2])
    end
    local next_head = after_taken[name]
    local left
    if next_head == nil then
      left = refresh_head(name)
    elseif next_head then
      redis.call('ZADD', K .. ':names', next_head, name)
      left = true
    else
      redis.call('ZREM', K .. ':names', name)
      left = false
    end
    if not left then
      names_left = names_left - 1
    end
    if left and r and #ids >= r[4] then
      -- The limit, not the waiting jobs, ran out.
      hold(r[3])
    end
  end
  for name, r in pairs(rated) do
    if r[4] == 0 then
      hold(r[3])
    end
  end
  if queue_key then
    count(queue_key, taken_total, queue_rate)
  end
  -- Work is left: let another idle worker know.
  if #jobs > 0 and names_left > 0 then
    wake()
  end
end

local next_due = -1
-- Read again only where this step moved what was due.
if #due > 0 then
  first = redis.call('ZRANGE', K .. ':delayed', 0, 0, 'WITHSCORES')
end
if first[2] then
  next_due = math.max(0, tonumber(first[2]) - now)
end
if #due_ticks > 0 then
  tick = redis.call('ZRANGE', K .. ':sched', 0, 0, 'WITHSCORES')
end
if tick[2] then
  local until_tick = math.max(0, tonumber(tick[2]) - now)
  if next_due < 0 or until_tick < next_due then
    next_due = until_tick
  end
end
if limited >= 0 then
  limited = math.max(0, limited - now)
end
flush_counts()
return {lost, paused, next_due, now, jobs, held, limited, refills, reported}
