--- A scriptable misbehaving HTTP/1.1 server (spec/support/fault_server.py)
-- for the client's retry and error specs.
--
--   local fault = require "support.fault_server"
--   local srv = fault.start()                  -- srv.port, srv.pid
--   srv:script{ { status = 503, body = "busy" },
--               { action = "reset" },
--               { status = 200, body = "{}" } }  -- consumed one per request
--   srv:url("/x")                              --> "http://127.0.0.1:<port>/x"
--   srv:requests()                             -- what the server received
--   srv:reset()                                -- forget steps and requests
--   srv:stop()                                 -- in teardown()/finally()
--
-- Steps (fault_server.py has the details): `{status, headers, body}`;
-- `{action = "reset"}` (RST), `"close"` (close without answering),
-- `"delay"` (`seconds`, then the response), `"truncate"` (Content-Length
-- `length` larger than the body, then close), `"slow_body"` (`chunk` bytes
-- every `interval` seconds); `times = k` repeats a step. A default response
-- (200, empty) answers when no step waits: `srv:script(steps, default)`
-- replaces it.
--
-- The control calls are plain blocking luasocket requests: test-only code,
-- never inside an aio_aws task that needs the loop to keep running.
local proc = require "support.proc"
local cjson = require "cjson"
local http = require "socket.http"
local ltn12 = require "ltn12"

local M = {}

local PYTHON = "/usr/bin/python3"
local SCRIPT = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/fault_server.py"

local Server = {}
Server.__index = Server

function Server:url(path)
  return proc.url("http://127.0.0.1:" .. self.port, path)
end

-- One control request; returns the decoded JSON answer, raises on failure
-- (a broken test fixture, not a condition under test).
local function control(self, method, path, doc)
  local body = doc ~= nil and cjson.encode(doc) or ""
  local out = {}
  local ok, status = http.request{
    url = self:url(path), method = method,
    headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#body) },
    source = ltn12.source.string(body), sink = ltn12.sink.table(out),
  }
  local text = table.concat(out)
  if not ok or status ~= 200 then
    error(("fault server %s %s failed: %s %s"):format(method, path, tostring(status), text), 3)
  end
  return cjson.decode(text)
end

local function is_list(t)
  return type(t) == "table" and (#t > 0 or next(t) == nil)
end

--- Queue steps (a list), and optionally replace the default response.
-- Returns how many requests the queued steps will answer.
function Server:script(steps, default)
  if not is_list(steps) then error("fault server: script(steps): a list of steps expected", 2) end
  local doc = { steps = #steps > 0 and steps or nil, default = default }
  if doc.steps == nil and doc.default == nil then return 0 end
  return math.tointeger(control(self, "POST", "/__script", doc).queued)
end

--- The requests received so far (oldest first): method, path, query,
-- headers (lower-case names), body_length, time, step, peer_port.
function Server:requests()
  local list = control(self, "GET", "/__requests")
  for _, r in ipairs(list) do
    if r.step == cjson.null then r.step = nil end
    -- lua-cjson decodes every number as a float
    r.step, r.body_length, r.peer_port = math.tointeger(r.step), math.tointeger(r.body_length), math.tointeger(r.peer_port)
  end
  return list
end

--- Forget steps, requests and the default response.
function Server:reset()
  control(self, "POST", "/__reset", {})
  return true
end

--- Stop the server and remove its temp dir. Idempotent.
function Server:stop()
  return self.proc:stop()
end

--- Start a fault server. opts.port (default 0: any free port), opts.timeout
-- (seconds to wait for it, default 10). Raises with the tail of its output
-- when it does not come up.
function M.start(opts)
  opts = opts or {}
  local p = proc.start{ name = "fault_server", argv = { PYTHON, SCRIPT, tostring(opts.port or 0) } }
  local port, err = p:wait_log("^(%d+)\n", opts.timeout)
  if not port then
    p:stop()
    error(err, 2)
  end
  return setmetatable({ port = math.tointeger(tonumber(port)), pid = p.pid, proc = p }, Server)
end

return M
