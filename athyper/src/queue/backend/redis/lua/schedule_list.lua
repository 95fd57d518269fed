-- Every schedule of the queue. Returns a list of {id, head, payload, spec,
-- missed policy, grace ms, ticks, last tick}.
expect(':sched')
local out = {}
for _, id in ipairs(redis.call('ZRANGE', K .. ':sched', 0, -1)) do
  local s = redis.pcall('HMGET', K .. ':s:' .. id, 'head', 'pl', 'spec', 'miss', 'grace', 'ticks', 'last')
  if not failed(s) and s[1] then
    out[#out + 1] = {id, s[1], s[2] or '', s[3] or '', s[4] or 'skip', s[5] or '0', s[6] or '', s[7] or ''}
  end
end
return out
