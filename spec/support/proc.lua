--- Background processes, free ports and temp directories for the specs.
--
-- Linux only (reads /proc). Plain Lua 5.4 plus luasocket; everything else
-- goes through io.popen / os.execute.
--
-- How a process is started, and why:
--
--   io.popen("echo $$; exec setpriv --pdeathsig KILL CMD... </dev/null >>LOG 2>&1")
--
-- * The shell prints its own pid and then execs the command, so the pid we
--   read is the server's pid, and the server is a direct child of this Lua
--   process. We reap it ourselves (closing the popen handle waits for it), so
--   no zombie is left behind: the container's pid 1 does not reap orphans,
--   and a zombie still answers `kill -0`.
-- * `setpriv --pdeathsig KILL` makes the kernel kill the server when this Lua
--   process dies for any reason (a failed assertion, a segfault in the C core
--   under test, SIGKILL). That is the safety net for a crash; it does not
--   replace stopping the server.
-- * stdout/stderr go to a log file, so error messages can quote its tail.
--
-- How specs must stop what they start (nothing else is needed):
--
--   describe("...", function()
--     local srv
--     setup(function() srv = nginx.start() end)
--     teardown(function() if srv then srv:stop() end end)  -- runs even when tests fail
--   end)
--
--   it("...", function()
--     local p = proc.start{ argv = {...} }
--     finally(function() p:stop() end)                     -- runs even when the test fails
--   end)
--
-- stop() is idempotent. As a last resort, anything still running when the
-- Lua state is closed (busted closes it on exit) is stopped and its temp
-- directory removed by a finalizer, see `renew_sentinel` below.
--
-- Error channels: misuse raises; runtime failures (a server that does not come
-- up) return nil, message, where the message ends with the tail of the log.
local socket = require "socket"

local M = {}

local live = {}   -- pid -> Proc: started and not yet reaped
local dirs = {}   -- path -> true: temp directories not yet removed

M.now = socket.gettime
M.sleep = socket.sleep

--- Quote one word for /bin/sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function shell_words(argv)
  local out = {}
  for i, a in ipairs(argv) do out[i] = M.quote(a) end
  return table.concat(out, " ")
end

--- Run a shell command, return its stdout (trailing newline removed) and
-- whether it succeeded.
function M.sh(cmd)
  local f = assert(io.popen(cmd, "r"))
  local out = f:read("a")
  local ok = f:close()
  return (out:gsub("\n$", "")), ok == true
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
M.read_file = read_file

--- The last `n` lines (default 20) of a file, or "" when it does not exist.
function M.tail(path, n)
  local s = read_file(path) or ""
  local lines = {}
  for line in s:gmatch("[^\n]*") do lines[#lines + 1] = line end
  while #lines > 0 and lines[#lines] == "" do lines[#lines] = nil end
  local first = math.max(1, #lines - (n or 20) + 1)
  return table.concat(lines, "\n", first, #lines)
end

local function with_tail(msg, log)
  if not log then return msg end
  return ("%s\n--- last lines of %s ---\n%s"):format(msg, log, M.tail(log))
end

--- True when `pid` is a live process (a zombie counts as dead).
function M.alive(pid)
  local stat = read_file("/proc/" .. math.tointeger(pid) .. "/stat")
  if not stat then return false end
  local state = stat:match("^%d+ %(.*%) (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

local function signal(pid, sig)
  os.execute(("kill -%s %d 2>/dev/null"):format(sig, pid))
end

-- Poll until `pred()` is true or `timeout` seconds pass; returns pred's value.
local function poll(pred, timeout, interval)
  local deadline = M.now() + timeout
  while true do
    local v = pred()
    if v or M.now() >= deadline then return v end
    M.sleep(interval or 0.02)
  end
end
M.poll = poll

------------------------------------------------------------------------------
-- Temp directories

local function tmp_base()
  local base = os.getenv("TMPDIR")
  if not base or base == "" then base = "/tmp" end
  return base
end

--- Create a fresh directory under $TMPDIR (or /tmp). It is removed by
-- `M.rmdir`, by the `stop()` of whoever owns it, or at exit.
function M.tmpdir(prefix)
  prefix = (prefix or "tmp"):gsub("[^%w_-]", "_")
  local out, ok = M.sh("mktemp -d " .. M.quote(tmp_base() .. "/aio-aws-" .. prefix .. "-XXXXXX"))
  if not ok or out == "" then error("mktemp -d failed under " .. tmp_base(), 2) end
  dirs[out] = true
  return out
end

--- Remove a directory made by `M.tmpdir` (others are refused: this runs rm -rf).
function M.rmdir(path)
  if not dirs[path] then error("not a directory made by proc.tmpdir: " .. tostring(path), 2) end
  os.execute("rm -rf -- " .. M.quote(path))
  dirs[path] = nil
  return true
end

------------------------------------------------------------------------------
-- Ports

--- base .. path, with the "/" between them ensured: url("http://h:1", "x")
-- is "http://h:1/x"; the path defaults to "/".
function M.url(base, path)
  path = path or "/"
  if path:sub(1, 1) ~= "/" then path = "/" .. path end
  return base .. path
end

--- A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read
-- the port, close). Another process could take it before the caller binds it;
-- starters that care retry on "Address already in use".
function M.free_port(host)
  local s = assert(socket.bind(host or "127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return math.tointeger(tonumber(port))
end

--- Wait until a TCP port accepts a connection.
-- opts: host (default 127.0.0.1), timeout (seconds, default 10), proc (a Proc:
-- give up at once if it exits), log (a path to quote; default proc.log).
-- Returns true, or nil, message (with the log tail).
function M.wait_port(port, opts)
  opts = opts or {}
  local host, p = opts.host or "127.0.0.1", opts.proc
  local log = opts.log or (p and p.log)
  local deadline = M.now() + (opts.timeout or 10)
  while true do
    local c = socket.tcp()
    c:settimeout(0.25)
    local ok = c:connect(host, port)
    c:close()
    if ok then return true end
    if p and not p:alive() then
      return nil, with_tail(("%s exited before %s:%d accepted connections"):format(p.name, host, port), log)
    end
    if M.now() >= deadline then
      return nil, with_tail(("%s:%d did not accept connections within %gs")
        :format(host, port, opts.timeout or 10), log)
    end
    M.sleep(0.02)
  end
end

------------------------------------------------------------------------------
-- Processes

local Proc = {}
Proc.__index = Proc

-- A finalizer object that stops everything still live when the Lua state is
-- closed. Lua calls finalizers at close in the reverse order the objects were
-- marked, so a sentinel created after the latest popen handle runs before any
-- popen handle's own finalizer (which would otherwise wait forever for a
-- server still running). Hence a new sentinel after every start; the old one
-- is disarmed and left to the collector.
local sentinel
local function renew_sentinel()
  if sentinel then sentinel.armed = false end
  sentinel = setmetatable({ armed = true }, { __gc = function(s)
    if not s.armed then return end
    for _, p in pairs(live) do p:stop(1) end
    for d in pairs(dirs) do M.rmdir(d) end
  end })
end

local has_setpriv
local function pdeathsig_prefix()
  if has_setpriv == nil then
    local _, ok = M.sh("setpriv --pdeathsig KILL true 2>/dev/null")
    has_setpriv = ok
  end
  return has_setpriv and "setpriv --pdeathsig KILL " or ""
end

--- Start a background process.
-- opts.argv  list of words (required); argv[1] is looked up in PATH
-- opts.log   file for stdout+stderr (default: a file in a new temp dir,
--            removed by stop())
-- opts.cwd   working directory
-- opts.env   table of extra environment variables
-- opts.name  name used in messages (default argv[1])
-- Returns a Proc: fields pid, log, name; methods alive(), stop([grace]),
-- log_tail([n]), wait_port(port[, timeout]), wait_log(pattern[, timeout]).
-- Raises if the process cannot be started at all.
function M.start(opts)
  if type(opts) ~= "table" or type(opts.argv) ~= "table" or #opts.argv == 0 then
    error("proc.start{argv = {...}} expected", 2)
  end
  local own_dir
  local log = opts.log
  if not log then
    own_dir = M.tmpdir("proc")
    log = own_dir .. "/output.log"
  end
  local env = {}
  for k, v in pairs(opts.env or {}) do env[#env + 1] = M.quote(k .. "=" .. v) end
  -- Servers are not our code: under `make check-asan` the sanitizer
  -- runtime preloaded into the specs must not leak into them.
  local cmd = ("%secho $$; exec env -u LD_PRELOAD %s%s%s </dev/null >>%s 2>&1"):format(
    opts.cwd and ("cd " .. M.quote(opts.cwd) .. " && ") or "",
    #env > 0 and (table.concat(env, " ") .. " ") or "",
    pdeathsig_prefix(), shell_words(opts.argv), M.quote(log))
  local f = assert(io.popen(cmd, "r"))
  local pid = math.tointeger(tonumber(f:read("l") or ""))
  if not pid then
    f:close()
    if own_dir then M.rmdir(own_dir) end
    error("could not start " .. shell_words(opts.argv), 2)
  end
  local p = setmetatable({ pid = pid, log = log, name = opts.name or opts.argv[1],
    argv = opts.argv, file = f, own_dir = own_dir }, Proc)
  live[pid] = p
  renew_sentinel()
  return p
end

function Proc:alive()
  return self.file ~= nil and M.alive(self.pid)
end

function Proc:log_tail(n)
  return M.tail(self.log, n)
end

function Proc:wait_port(port, timeout)
  return M.wait_port(port, { proc = self, timeout = timeout })
end

--- Wait until the log matches a Lua pattern; returns the captures (or the
-- match), or nil, message with the log tail when the process exits or the
-- timeout (default 10 s) passes.
function Proc:wait_log(pattern, timeout)
  local found
  poll(function()
    found = table.pack((read_file(self.log) or ""):match(pattern))
    return found[1] ~= nil or not self:alive()
  end, timeout or 10)
  if found[1] ~= nil then return table.unpack(found, 1, found.n) end
  -- One last look: the process may have written the line and exited.
  found = table.pack((read_file(self.log) or ""):match(pattern))
  if found[1] ~= nil then return table.unpack(found, 1, found.n) end
  local why = self:alive() and ("did not log %q within %gs"):format(pattern, timeout or 10)
    or "exited before logging " .. ("%q"):format(pattern)
  return nil, with_tail(self.name .. " " .. why, self.log)
end

--- Stop: SIGTERM, wait up to `grace` seconds (default 5), then SIGKILL; reap
-- the process and remove its own temp dir. Idempotent. Returns true, plus
-- how it ended ("exit"|"signal", code) the first time.
function Proc:stop(grace)
  if not self.file then return true end
  if M.alive(self.pid) then
    signal(self.pid, "TERM")
    if not poll(function() return not M.alive(self.pid) end, grace or 5) then
      signal(self.pid, "KILL")
      poll(function() return not M.alive(self.pid) end, 5)
    end
  end
  -- The process is a zombie now (or gone): closing the popen handle reaps it.
  local _, how, code = self.file:close()
  self.file = nil
  live[self.pid] = nil
  if self.own_dir and dirs[self.own_dir] then M.rmdir(self.own_dir) end
  self.how, self.code = how, code
  return true, how, code
end

--- Pids of processes started here and not yet stopped.
function M.running()
  local out = {}
  for pid in pairs(live) do out[#out + 1] = pid end
  table.sort(out)
  return out
end

--- Stop every live process and remove every temp dir (for a spec's last
-- teardown, or a launcher's exit path).
function M.stop_all(grace)
  for _, p in pairs(live) do p:stop(grace) end
  for d in pairs(dirs) do M.rmdir(d) end
end

return M
