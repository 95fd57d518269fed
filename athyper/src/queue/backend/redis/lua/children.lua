-- A flow's parent's children and how each ended. ARGV: the parent's id.
-- Returns {children JSON ('' for a job without), {index, outcome, ...}}.
local id = ARGV[1]
local kids = redis.pcall('GET', K .. ':kids:' .. id)
if failed(kids) or not kids then
  kids = ''
end
local ch = redis.pcall('HGETALL', K .. ':ch:' .. id)
if failed(ch) then
  ch = {}
end
return {kids, ch}
