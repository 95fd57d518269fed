-- Jobs in one state whose handler has a name, from an offset, looking
-- through at most `scan` entries. ARGV: state (w d a c f), name, offset,
-- limit, scan. Returns {info tuples, next offset (-1: the end)}.
expect(':jobs', ':names', ':delayed', ':workers', ':completed', ':failed')
local state, name = ARGV[1], ARGV[2]
local offset, limit, scan = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
if state == 'w' then
  -- Waiting jobs are kept per name already.
  local key = K .. ':w:' .. name
  local ids = redis.pcall('ZRANGE', key, offset, offset + limit - 1)
  if failed(ids) then
    return {out, -1}
  end
  for _, id in ipairs(ids) do
    out[#out + 1] = info(id) or {id, '', state, {}, {}, {}}
  end
  local next = offset + #ids
  if next >= redis.call('ZCARD', key) then
    next = -1
  end
  return {out, next}
end
local ids = ids_in(state, offset, scan)
local at = offset
for _, id in ipairs(ids) do
  if #out >= limit then
    break
  end
  at = at + 1
  local st = state_of(id, 'n')
  local n = st and st[1]
  if not n then
    local _, hn = header(redis.call('HGET', K .. ':jobs', id))
    n = hn
  end
  if n == name then
    out[#out + 1] = info(id) or {id, '', state, {}, {}, {}}
  end
end
local next = at
if #ids < scan and at >= offset + #ids then
  next = -1
end
return {out, next}
