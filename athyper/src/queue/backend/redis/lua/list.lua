-- Jobs in one state. ARGV: state (w d a c f), offset, limit.
-- Returns a list of info tuples.
expect(':jobs', ':names', ':delayed', ':workers', ':completed', ':failed')
local state, offset, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = {}
if state == 'w' then
  local scored = {}
  for _, name in ipairs(redis.call('SMEMBERS', K .. ':names')) do
    local r = redis.pcall('ZRANGE', K .. ':w:' .. name, 0, offset + limit - 1, 'WITHSCORES')
    if not failed(r) then
      for j = 1, #r, 2 do
        scored[#scored + 1] = {tonumber(r[j + 1]), r[j]}
      end
    end
  end
  table.sort(scored, function(a, b) return a[1] < b[1] end)
  for j = offset + 1, math.min(offset + limit, #scored) do
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
  for j = offset + 1, math.min(offset + limit, #scored) do
    ids[#ids + 1] = scored[j][2]
  end
elseif state == 'd' then
  ids = redis.call('ZRANGE', K .. ':delayed', offset, offset + limit - 1)
elseif limit > 0 then
  local set = state == 'c' and ':completed' or ':failed'
  ids = redis.call('ZREVRANGE', K .. set, offset, offset + limit - 1)
end
local out = {}
for _, id in ipairs(ids) do
  -- A listed id without a record is shown with an empty one, so that it
  -- can be seen and removed.
  out[#out + 1] = info(id) or {id, '', state, {}, {}}
end
return out
