-- The project's client in the transport benchmark (see bench/README.md):
-- N GETs of URL with K tasks, each taking the next request number until N
-- are done. Run from the repository root:
--
--   lua5.4 bench/transport.lua URL N K     exit 0 when all N answered 200
--   lua5.4 bench/transport.lua --probe     exit 0 when the client loads
--
-- Nothing but the requests is timed by the runner's clock and rusage that
-- is not also in the C floor: module loading and loop start-up are included
-- (as process start is for the floor and curl), so keep this file lean.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "lua/?.so;" .. package.cpath

local aws = require "aio_aws"
local http = require "aio_aws.http"

if arg[1] == "--probe" then
  os.exit(0)
end

local url, n, k = arg[1], math.tointeger(tonumber(arg[2] or "")), math.tointeger(tonumber(arg[3] or ""))
if not url or not n or not k or n < 1 or k < 1 then
  io.stderr:write("usage: lua5.4 bench/transport.lua URL N K\n")
  os.exit(2)
end

local next_request, failed, first_error = 0, 0, nil

local function worker()
  while next_request < n do
    next_request = next_request + 1
    local res, err = http.request{ method = "GET", url = url }
    if not res or res.status ~= 200 then
      failed = failed + 1
      first_error = first_error or (res and ("status " .. tostring(res.status)) or tostring(err))
    end
  end
end

local ok, err = aws.run(function()
  local tasks = {}
  for w = 1, math.min(k, n) do
    tasks[w] = aws.spawn(worker)
  end
  local _, errs = aws.gather(table.unpack(tasks))
  if errs then
    for _, e in pairs(errs) do
      failed = failed + 1
      first_error = first_error or ("task failed: " .. tostring(e))
    end
  end
  return true
end)

if not ok then
  io.stderr:write("transport.lua: aws.run failed: ", tostring(err), "\n")
  os.exit(1)
end
if failed > 0 then
  io.stderr:write(("transport.lua: %d of %d requests failed; first: %s\n"):format(failed, n, first_error))
  os.exit(1)
end
