--- Loopback stand-ins for the EC2 instance metadata service, the
-- container credentials endpoint and STS (spec/support/creds_server.py),
-- for the credential provider specs.
--
--   local creds_server = require "support.creds_server"
--   local srv = creds_server.start()       -- srv.port, srv.url
--   srv:config{ imds_v2_only = true, secrets = { AKID = "secret" } }
--   srv:script("/latest/api/token", { { status = 404 } }, "PUT")
--   srv:requests()                         -- what it received
--   srv:reset()                            -- between tests
--   srv:stop()                             -- in teardown()
--
-- Control calls are blocking luasocket requests: test code only, never
-- from inside an aio_aws task.
local proc = require "support.proc"
local cjson = require "cjson"
local http = require "socket.http"
local ltn12 = require "ltn12"

local M = {}

local PYTHON = "/usr/bin/python3"
local SCRIPT = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/creds_server.py"

local Server = {}
Server.__index = Server

local function control(self, method, path, doc)
  local body = doc ~= nil and cjson.encode(doc) or ""
  local out = {}
  local ok, status = http.request{
    url = self.url .. path, method = method,
    headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#body) },
    source = ltn12.source.string(body), sink = ltn12.sink.table(out),
  }
  local text = table.concat(out)
  if not ok or status ~= 200 then
    error(("creds server %s %s failed: %s %s"):format(method, path, tostring(status), text), 3)
  end
  return cjson.decode(text)
end

--- Merge settings (see DEFAULTS in creds_server.py).
function Server:config(t)
  control(self, "POST", "/__config", t)
  return self
end

--- The next requests to `path` (optionally only with `method`) answer
-- `steps` first: `{status, body, headers, delay, times}`.
function Server:script(path, steps, method)
  control(self, "POST", "/__script", { path = path, steps = steps, method = method })
  return self
end

--- The requests received so far, oldest first (`auth` is nil when the
-- request was not signed).
function Server:requests()
  local list = control(self, "GET", "/__requests")
  for _, r in ipairs(list) do
    if r.auth == cjson.null then r.auth = nil end
    if r.auth and r.auth.token == cjson.null then r.auth.token = nil end
  end
  return list
end

--- The requests whose path is `path` (and method `method`, if given).
function Server:requests_to(path, method)
  local out = {}
  for _, r in ipairs(self:requests()) do
    if r.path == path and (method == nil or r.method == method) then out[#out + 1] = r end
  end
  return out
end

function Server:reset()
  control(self, "POST", "/__reset", {})
  return self
end

function Server:stop()
  return self.proc:stop()
end

--- Start the server (any free port). Raises when it does not come up.
function M.start(opts)
  opts = opts or {}
  local p = proc.start{ name = "creds_server", argv = { PYTHON, SCRIPT, "0" } }
  local port, err = p:wait_log("^(%d+)\n", opts.timeout)
  if not port then
    p:stop()
    error(err, 2)
  end
  port = math.tointeger(tonumber(port))
  return setmetatable({ port = port, url = "http://127.0.0.1:" .. port, pid = p.pid, proc = p }, Server)
end

return M
