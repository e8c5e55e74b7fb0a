--- What the npm test servers (support.s3rver, support.dynalite, support.sqs)
-- share: find the installed package, start it with node on 127.0.0.1 in a
-- fresh temp dir, read the port it bound, wait until it answers HTTP, stop it.
--
-- The servers are installed by `make deps` (tools/npm-deps.sh) into
-- node_modules/ at the repository root. Each listens on port 0 (the kernel
-- picks a free port, no race with other processes) and prints the port it
-- got; start() reads it from the log, then polls the endpoint until it
-- answers with any HTTP status. `node` is looked up in PATH
-- ($AIO_AWS_NODE overrides it).
--
-- A server object: fields name, endpoint ("http://127.0.0.1:PORT"), port,
-- pid, dir (its temp dir: log and data, removed by stop()), log, proc;
-- methods url(path), log_tail([n]), stop() (idempotent; SIGTERM, then
-- SIGKILL after a grace period; the process is reaped). start() raises,
-- with the log's tail, when the package is not installed or the server does
-- not come up, after cleaning up.
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local proc = require "support.proc"

local M = {}

-- This file is ROOT/spec/support/node_server.lua; busted loads it by a
-- relative path, and node runs in the server's temp dir, so make it absolute
-- (on first use: no I/O at require time).
local SOURCE = debug.getinfo(1, "S").source
--- node_modules/ at the repository root (absolute); a spec may point it elsewhere.
M.node_modules = nil
local function node_modules()
  if not M.node_modules then
    local root = SOURCE:match("^@(.*)/spec/support/[^/]*$") or "."
    if root:sub(1, 1) ~= "/" then root = proc.sh("pwd") .. "/" .. root end
    M.node_modules = root .. "/node_modules"
  end
  return M.node_modules
end

local node_checked
local function node_bin()
  local node = os.getenv("AIO_AWS_NODE")
  if not node or node == "" then node = "node" end
  if node_checked ~= node then
    local _, found = proc.sh("command -v " .. proc.quote(node) .. " >/dev/null 2>&1")
    if not found then
      error(("%s not found: the npm test servers need Node.js (`make deps` installs it)"):format(node), 0)
    end
    node_checked = node
  end
  return node
end

--- Absolute path of a file inside an installed package; raises when the
-- package is missing.
function M.package_file(package, file)
  local path = node_modules() .. "/" .. package .. "/" .. file
  local f = io.open(path, "rb")
  if f then
    f:close()
  else
    error(("%s is not installed (%s is missing): run `make deps` (tools/npm-deps.sh)")
      :format(package, path), 3)
  end
  return path
end

-- One HTTP request with a short timeout: true when anything answered with
-- a status line.
local function answers(url)
  local ok, code = http.request{
    url = url, method = "GET", sink = ltn12.sink.null(),
    create = function()
      local c = socket.tcp()
      c:settimeout(1)
      return c
    end,
  }
  return ok ~= nil and math.type(code) == "integer"
end

local Server = {}
Server.__index = Server

function Server:url(path) return proc.url(self.endpoint, path) end

function Server:log_tail(n) return proc.tail(self.log, n) end

--- Stop the server and remove its temp dir. Idempotent.
function Server:stop()
  if self.stopped then return true end
  self.stopped = true
  self.proc:stop()
  proc.rmdir(self.dir)
  return true
end

--- Start a node server.
-- spec.name     name in messages
-- spec.argv     node's arguments (a script, or "-e", source, args...); a
--               function(dir) returning them, called once the temp dir exists
-- spec.env      extra environment variables
-- spec.ready    Lua pattern matched against the log that captures the port
-- spec.timeout  seconds for the whole start (default 20)
-- Returns a server (see the header), with extra fields copied from spec.fields.
function M.start(spec)
  local dir = proc.tmpdir(spec.name)
  local log = dir .. "/server.log"
  local timeout = spec.timeout or 20
  local deadline = proc.now() + timeout
  local ok, argv = pcall(function()
    local args = type(spec.argv) == "function" and spec.argv(dir) or spec.argv
    return table.move(args, 1, #args, 2, { node_bin() })
  end)
  if not ok then
    proc.rmdir(dir)
    error(argv, 2)
  end
  local p = proc.start{ name = spec.name, argv = argv, env = spec.env, log = log, cwd = dir }
  local srv = setmetatable({ name = spec.name, proc = p, pid = p.pid, dir = dir, log = log }, Server)
  local port, err = p:wait_log(spec.ready, timeout)
  if port then
    srv.port = math.tointeger(tonumber(port))
    srv.endpoint = "http://127.0.0.1:" .. srv.port
    -- The listen callback has run; poll until a request gets an answer.
    if not proc.poll(function() return answers(srv.endpoint .. "/") or not p:alive() end,
        math.max(0, deadline - proc.now())) or not p:alive() then
      err = ("%s on %s did not answer HTTP within %gs%s\n--- last lines of %s ---\n%s")
        :format(spec.name, srv.endpoint, timeout, p:alive() and "" or " (it exited)", log, proc.tail(log))
      port = nil
    end
  end
  if not port then
    srv:stop()
    error(err, 2)
  end
  for k, v in pairs(spec.fields or {}) do srv[k] = v end
  return srv
end

return M
