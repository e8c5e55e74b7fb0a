--- Start `bin/aio-aws local` as a child process for a spec.
--
--     local emulator = require "support.emulator"
--     local em = assert(emulator.start{"--no-auth"})   -- extra CLI arguments
--     -- em.url, em.access_key, em.secret_key, em.region, em.data_dir, em.port, em.proc
--     em:restart()          -- stop (SIGTERM) and start again: same port, same data dir
--     em:stop()             -- -> true, how ("exit"|"signal"), code
--
-- Named options besides the arguments: `data_dir` (default: a fresh temp
-- dir, removed at exit), `functions_dir`, `timeout` (seconds to wait for
-- the endpoint, default 15). The endpoint binds 127.0.0.1 on a port the
-- kernel picks (`--port 0`); the URL is read from the line it prints, then
-- the spec waits until the port accepts connections. Runs with the
-- interpreter of the spec (lua5.4) and without the sanitizer preload (see
-- support/proc.lua). Returns the handle, or nil, message with the log tail.
local proc = require "support.proc"

local M = {}

local root = (debug.getinfo(1, "S").source:match("^@(.*)/spec/support/[^/]*$")) or "."
M.BIN = root .. "/bin/aio-aws"

local LINE = "aio%-aws local: (http://[%d.]+:(%d+)) access_key=(%S+) secret_key=(%S+) region=(%S+)"

local Emulator = {}
Emulator.__index = Emulator

local function launch(self, port)
  local argv = { "lua5.4", M.BIN, "local", "--port", tostring(port), "--data-dir", self.data_dir }
  if self.functions_dir then
    argv[#argv + 1] = "--functions-dir"
    argv[#argv + 1] = self.functions_dir
  end
  for _, a in ipairs(self.args) do argv[#argv + 1] = tostring(a) end
  self.runs = self.runs + 1
  self.log_path = self.log_dir .. "/run" .. self.runs .. ".log"
  local p = proc.start { argv = argv, name = "aio-aws local", log = self.log_path }
  local url, pstr, ak, sk, region = p:wait_log(LINE, self.timeout)
  if not url then
    local msg = pstr
    p:stop()
    return nil, msg
  end
  local ok, err = p:wait_port(tonumber(pstr), self.timeout)
  if not ok then
    p:stop()
    return nil, err
  end
  self.proc, self.url, self.port = p, url, math.tointeger(tonumber(pstr))
  self.access_key, self.secret_key, self.region = ak, sk, region
  return self
end

--- Stop the endpoint (SIGTERM, then SIGKILL after 10 s).
-- @return true, how ("exit" | "signal"), code (exit status or signal number)
function Emulator:stop()
  if not self.proc then return true, self.how, self.code end
  local _, how, code = self.proc:stop(10)
  self.proc = nil
  self.how, self.code = how, code
  return true, how, code
end

--- Stop and start again on the same port with the same data dir.
-- @return self, or nil, message
function Emulator:restart()
  self:stop()
  return launch(self, self.port)
end

--- The output (stdout and stderr) of the running endpoint, or of the last one.
function Emulator:log()
  return self.log_path and proc.read_file(self.log_path) or ""
end

function M.start(opts)
  opts = opts or {}
  local args = {}
  for i = 1, #opts do args[i] = opts[i] end
  local self = setmetatable({
    args = args,
    data_dir = opts.data_dir or proc.tmpdir("emulator"),
    functions_dir = opts.functions_dir,
    timeout = opts.timeout or 15,
    log_dir = proc.tmpdir("emulator-log"),
    runs = 0,
  }, Emulator)
  return launch(self, 0)
end

return M
