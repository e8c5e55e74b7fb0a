--- Child of spec/server_spec.lua, started under a low descriptor limit
-- (`ulimit -Sn`): a server whose accept() fails with EMFILE must pause and
-- recover, not spin or crash. It runs the probe's "concurrent" scenario
-- against itself and prints the probe's JSON, "accept_pauses N" and
-- "served N".
--   lua5.4 spec/support/server_fdlimit.lua CONNECTIONS
local aws = require "aio_aws"
local server = require "aio_aws.server"
local process = require "aio_aws.process"
local core = require "aio_aws.core"

local n = math.tointeger(tonumber(arg[1])) or 100
local served = 0

local ok, err = aws.run(function()
  local srv
  srv = assert(server.listen{ handler = function(req)
    -- Hold every request (and its descriptor) until accepting has had to
    -- pause: the probe's connections then really exceed the limit at once.
    local deadline = core.monotime() + 30
    while srv:stats().accept_pauses == 0 and core.monotime() < deadline do aws.sleep(0.01) end
    served = served + 1
    return { status = 200, body = req.path:sub(2) }
  end })
  local r = assert(process.run({ "/usr/bin/python3", "spec/support/server_probe.py", "concurrent",
    tostring(srv.port), tostring(n) }, { timeout = 120 }))
  local pauses = srv:stats().accept_pauses
  srv:close()
  io.stdout:write(r.stdout)
  io.stderr:write(r.stderr)
  print("accept_pauses " .. pauses)
  return true
end)
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print("served " .. served)
