-- The workers of a queue: those holding a lease and those that announced
-- themselves. Returns a list of {worker, lease expiry ms (-1: none),
-- announcement JSON ('' if none), ids it holds}.
expect(':workers', ':winfo')
local out = {}
local seen = {}
local leases = redis.call('ZRANGE', K .. ':workers', 0, -1, 'WITHSCORES')
for i = 1, #leases, 2 do
  local worker = leases[i]
  seen[worker] = true
  local held = redis.pcall('SMEMBERS', K .. ':active:' .. worker)
  if failed(held) then
    held = {}
  end
  out[#out + 1] = {worker, leases[i + 1], redis.call('HGET', K .. ':winfo', worker) or '', held}
end
local infos = redis.call('HGETALL', K .. ':winfo')
for i = 1, #infos, 2 do
  if not seen[infos[i]] then
    out[#out + 1] = {infos[i], '-1', infos[i + 1], {}}
  end
end
return out
