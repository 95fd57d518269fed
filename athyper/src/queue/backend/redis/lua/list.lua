-- Jobs in one state. ARGV: state (w d a c f), offset, limit.
-- Returns a list of info tuples.
expect(':jobs', ':names', ':delayed', ':workers', ':completed', ':failed')
local state, offset, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = ids_in(state, offset, limit)
local out = {}
for _, id in ipairs(ids) do
  -- A listed id without a record is shown with an empty one, so that it
  -- can be seen and removed.
  out[#out + 1] = info(id) or {id, '', state, {}, {}, {}}
end
return out
