-- Interpreter-heavy loop for the lua workload: calls, tables, strings,
-- closures. Usage: lua loop.lua N
local n = tonumber(arg[1]) or 100000
local function step(i, a)
  local m = i % 3
  if m == 0 then return a + i * 7 elseif m == 1 then return a ~ (i << 2) end
  return a - (i >> 1)
end
local acc, counts, nkeys, v = 0, {}, 0, {x = 0, y = 0}
for i = 0, n - 1 do
  acc = step(i, acc) & 0xFFFFFFFF
  local key = "k" .. (i & 255)
  if not counts[key] then nkeys = nkeys + 1 end
  counts[key] = (counts[key] or 0) + 1
  v = {x = v.x + (i & 15), y = (v.y ~ i) & 0xFFFF}
end
print(n, acc, nkeys, v.x, v.y)
