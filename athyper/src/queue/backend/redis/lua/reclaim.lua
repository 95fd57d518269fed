-- Puts back the jobs a live worker holds but is not running: those handed
-- out by a fetch whose reply never reached it. ARGV: worker, then the ids
-- it runs. Returns the ids put back.
local running = {}
for i = 2, #ARGV do
  running[ARGV[i]] = true
end
local back = {}
for _, id in ipairs(held_by(ARGV[1])) do
  if not running[id] then
    redis.call('SREM', K .. ':active:' .. ARGV[1], id)
    put_back(id)
    back[#back + 1] = id
  end
end
flush_counts()
if #back > 0 then
  wake()
end
return back
