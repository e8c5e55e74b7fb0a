--- Child processes that never block the loop.
--
--     local process = require "aio_aws.process"
--     local p = assert(process.spawn{argv = {"sh", "-c", "echo hi"},
--       on_line = function(stream, line) print(stream, line) end})
--     local st = p:wait(10)        -- {exit_code = 0} | {signal = "KILL"} | nil, err
--     local r = process.run({"ls", "-l"}, {timeout = 5})  -- {exit_code, signal, stdout, stderr}
--
-- `argv` is run as given (no shell; argv[1] is looked up in $PATH of this
-- process). `env` (a table NAME -> value) replaces the environment entirely;
-- without it the child inherits ours (`process.environ()` returns a copy to
-- extend). `cwd` is the working directory, `stdin` a string fed to the child
-- (else /dev/null). The child runs in its own process group: `p:kill`
-- reaches `sh -c` and what it started. Only fds 0-2 are passed on.
-- `die_with_parent = true` has the kernel SIGKILL the child if this process
-- dies (a crash, SIGKILL), so nothing outlives it (Linux PR_SET_PDEATHSIG).
--
-- `on_line(stream, line)` ("stdout"/"stderr", line without its "\n") runs in
-- a task of its own, in order per stream; it may wait (sleep, I/O): the
-- pipes are then read on until 1 MiB of lines is queued, and the child
-- blocks on a full pipe after that. A last line without "\n" is
-- delivered at the end, a line longer than 256 KiB in pieces. Without
-- `on_line` the output is read and dropped. `p:wait` returns once the
-- child has exited and both pipes are closed, so every line has been
-- delivered by then.
--
-- Errors: misuse raises; a program that cannot be started (not found, not
-- executable, bad cwd) returns nil, err (code "SpawnError"); waits that
-- time out return nil, err (code "Timeout").
local core = require "aio_aws.core"
local async = require "aio_aws.async"
local errors = require "aio_aws.errors"

local suspend, need_task = async.suspend, async.need_task

local M = {}

local Process = {}
Process.__index = Process
Process.__name = "aio_aws.Process"

local function check_argv(argv, fn)
  if type(argv) ~= "table" then error(fn .. ": argv must be a list of strings", 3) end
  local n = #argv
  if n == 0 then error(fn .. ": argv must not be empty", 3) end
  for k in pairs(argv) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      error(fn .. ": argv must be a list of strings (no holes, no other keys)", 3)
    end
  end
  local out = {}
  for i = 1, n do
    local a = argv[i]
    if type(a) ~= "string" then
      error(("%s: argv[%d] must be a string, got %s"):format(fn, i, type(a)), 3)
    end
    if a:find("\0", 1, true) then error(("%s: argv[%d] contains a NUL byte"):format(fn, i), 3) end
    out[i] = a
  end
  return out
end

local function check_env(env, fn)
  if env == nil then return nil end
  if type(env) ~= "table" then error(fn .. ": env must be a table NAME -> value", 3) end
  local list = {}
  for k, v in pairs(env) do
    if type(k) ~= "string" or k == "" or k:find("[=%z]") then
      error(fn .. ": env names must be non-empty strings without '=' or NUL, got " .. tostring(k), 3)
    end
    if type(v) == "number" then v = tostring(v) end
    if type(v) ~= "string" then
      error(("%s: env value of %s must be a string, got %s"):format(fn, k, type(v)), 3)
    end
    if v:find("\0", 1, true) then error(fn .. ": env value of " .. k .. " contains a NUL byte", 3) end
    list[#list + 1] = k .. "=" .. v
  end
  table.sort(list)
  return list
end

local function check_opt(v, ty, fn, name)
  if v ~= nil and type(v) ~= ty then
    error(("%s: option '%s' must be a %s, got %s"):format(fn, name, ty, type(v)), 3)
  end
end

local function spawn_error(msg)
  return errors.new("SpawnError", msg)
end

-- The task that moves lines from the C object to on_line and notices the
-- end. It is the only waiter on the C object.
local function pump(self)
  local c, on_line = self._c, self._on_line
  local t = async.current()
  local waitable = { cancel = function() c:unwait() end }
  while true do
    local lines, finished = c:take()
    if on_line and not self._cb_error then
      for i = 1, #lines, 2 do
        local ok, e = pcall(on_line, lines[i], lines[i + 1])
        if not ok then
          -- Stop calling back; wait() reports it once the child is gone.
          self._cb_error = errors.new("CallbackError", "on_line raised: " .. tostring(e), { value = e })
          break
        end
      end
    end
    if finished then break end
    if c:wait(t.token) then
      local ok, e = pcall(suspend, t, waitable)
      if not ok then
        -- Cancelled: the child keeps running; stop it so nothing leaks.
        c:kill(9)
        self._cb_error = self._cb_error or errors.new("Cancelled", "process reader was cancelled")
        self._done:set()
        error(e, 0)
      end
    end
  end
  local code, sig, lost = c:status()
  self.exit_code, self.signal = code, sig
  self.result = { exit_code = code, signal = sig, output_lost = lost or nil }
  self._done:set()
end

local function start(opts, fn, mode)
  local argv = check_argv(opts.argv, fn)
  local env = check_env(opts.env, fn)
  check_opt(opts.cwd, "string", fn, "cwd")
  check_opt(opts.stdin, "string", fn, "stdin")
  check_opt(opts.on_line, "function", fn, "on_line")
  check_opt(opts.die_with_parent, "boolean", fn, "die_with_parent")
  local c, err = core.process_spawn {
    argv = argv, env = env, cwd = opts.cwd, stdin = opts.stdin,
    mode = mode or (opts.on_line and "lines" or "discard"),
    capture_max = opts.max_output, die_with_parent = opts.die_with_parent,
  }
  if not c then return nil, spawn_error(err) end
  local self = setmetatable({ _c = c, pid = c:pid(), _on_line = opts.on_line,
    _done = async.Event(), argv = argv }, Process)
  self._task = async.spawn(pump, self)
  return self
end

--- Start a child process (see the module comment for `opts`).
-- @treturn Process|nil
-- @treturn ?table err
function M.spawn(opts)
  if type(opts) ~= "table" then error("process.spawn: expected an options table, got " .. type(opts), 2) end
  return start(opts, "process.spawn")
end

--- Send a signal ("TERM" by default, "KILL", "INT", ... or a number) to
-- the child's process group. Returns true, or nil, err when the child has
-- already exited.
function Process:kill(sig)
  sig = sig or "TERM"
  local no = core.signal_number(sig)
  if not no then error("Process:kill: unknown signal " .. tostring(sig), 2) end
  local ok, err = self._c:kill(no)
  if not ok then return nil, errors.new("ProcessExited", err) end
  return true
end

--- True once the child has exited and its output has been read.
function Process:done()
  return self._done:is_set()
end

--- Wait for the child to exit (and its output to be delivered), at most
-- `timeout` seconds (nil: no limit). Returns {exit_code = n} or
-- {signal = "NAME"}, or nil, err (code "Timeout"; the child keeps running;
-- "CallbackError" when on_line raised).
function Process:wait(timeout)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0 or timeout ~= timeout) then
    error("Process:wait: timeout must be a number >= 0", 2)
  end
  if not self._done:is_set() then
    need_task("Process:wait")
    local ok, err = self._done:wait(timeout)
    if not ok then
      return nil, errors.new("Timeout", ("process %d did not exit within %g s"):format(self.pid, timeout),
        { retryable = true, cause = err })
    end
  end
  if self._cb_error then return nil, self._cb_error end
  return { exit_code = self.result.exit_code, signal = self.result.signal,
    output_lost = self.result.output_lost }
end

function Process:__tostring()
  return ("aio_aws.Process (pid %d, %s)"):format(self.pid,
    self._done:is_set() and (self.signal and ("signal " .. self.signal) or ("exit " .. tostring(self.exit_code)))
      or "running")
end

--- Run argv to completion and collect its output.
-- `opts`: env, cwd, stdin (as spawn), `timeout` (seconds: then the child
-- is killed with SIGKILL and nil, err "Timeout" returned), `max_output`
-- (bytes kept per stream, default 1 MiB; the rest is read and dropped and
-- `truncated` is set).
-- @treturn table|nil {exit_code, signal, stdout, stderr, truncated}
-- @treturn ?table err
function M.run(argv, opts)
  if opts ~= nil and type(opts) ~= "table" then error("process.run: opts must be a table", 2) end
  opts = opts or {}
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or opts.timeout < 0 or opts.timeout ~= opts.timeout) then
    error("process.run: timeout must be a number >= 0", 2)
  end
  if opts.max_output ~= nil and (math.type(opts.max_output) ~= "integer" or opts.max_output < 0) then
    error("process.run: max_output must be an integer >= 0", 2)
  end
  if opts.on_line ~= nil then error("process.run: on_line is for process.spawn", 2) end
  need_task("process.run")
  local o = { argv = argv, env = opts.env, cwd = opts.cwd, stdin = opts.stdin,
    max_output = opts.max_output or 1048576, die_with_parent = opts.die_with_parent }
  local p, err = start(o, "process.run", "capture")
  if not p then return nil, err end
  local st, werr = p:wait(opts.timeout)
  if not st then
    p:kill("KILL")
    p:wait()
    return nil, werr
  end
  local out, errout, truncated = p._c:output()
  return { exit_code = st.exit_code, signal = st.signal, stdout = out, stderr = errout,
    truncated = truncated }
end

--- A copy of this process's environment as a table NAME -> value.
function M.environ()
  return core.process_environ()
end

M.Process = Process
return M
