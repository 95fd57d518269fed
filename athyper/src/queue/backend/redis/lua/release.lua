-- Puts back every job a worker still holds and ends its lease. ARGV: worker.
-- Returns the ids put back.
local now = now_ms()
expect(':seq', ':jobs', ':names', ':workers', ':failed', ':counts', ':winfo')
local ids = held_by(ARGV[1])
for _, id in ipairs(ids) do
  put_back(id, 'a', now)
end
redis.call('DEL', K .. ':active:' .. ARGV[1])
redis.call('ZREM', K .. ':workers', ARGV[1])
redis.call('HDEL', K .. ':winfo', ARGV[1])
flush_counts()
if #ids > 0 then
  wake()
end
return ids
