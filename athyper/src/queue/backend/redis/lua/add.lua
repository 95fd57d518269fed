-- Adds jobs. ARGV: count, then per job: id ('' = generated), name,
-- priority, delay ms, record head (up to the enqueued time), payload.
-- Returns {id, created (1/0)} per job.
local now = now_ms()
expect(':seq', ':jobs', ':names', ':delayed', ':counts')
local n = tonumber(ARGV[1])
-- Every waiting set written below is checked before the first write.
local checked = {}
for i = 0, n - 1 do
  local name = ARGV[2 + i * 6 + 1]
  if not checked[name] then
    checked[name] = true
    local key = K .. ':w:' .. name
    local t = redis.call('TYPE', key).ok
    if t ~= 'none' and t ~= 'zset' then
      error({err = 'DAMAGED key ' .. key .. ' holds a ' .. t .. ', not the zset athyper keeps there; rename or delete it'})
    end
  end
end
local out = {}
for i = 0, n - 1 do
  local b = 2 + i * 6
  local id, name, p, delay = ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local created
  id, created = new_job(id, name, p, delay, ARGV[b + 4], ARGV[b + 5], now)
  out[#out + 1] = {id, created}
end
flush_counts()
if n > 0 then
  wake()
end
return out
