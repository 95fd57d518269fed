-- Puts back the jobs a live worker holds but does not know of: those
-- handed out by a fetch whose reply never reached it. ARGV: worker, then
-- the ids it knows (running, or finished with the result yet to send).
-- Returns the ids put back.
local now = now_ms()
expect(':seq', ':jobs', ':names', ':failed', ':counts')
local known = {}
for i = 2, #ARGV do
  known[ARGV[i]] = true
end
local back = {}
for _, id in ipairs(held_by(ARGV[1])) do
  if not known[id] then
    redis.call('SREM', K .. ':active:' .. ARGV[1], id)
    put_back(id, 'a', now)
    back[#back + 1] = id
  end
end
flush_counts()
if #back > 0 then
  wake()
end
return back
