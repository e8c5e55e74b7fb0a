-- aio_aws.process: child processes on the loop (spawn, on_line, wait,
-- kill, run), against real programs (sh, cat, head, yes, env, pwd, ls).
-- Expected values come from what the programs are told to print, never
-- from the module itself.
local aws = require "aio_aws"
local core = require "aio_aws.core"
local process = require "aio_aws.process"
local proc = require "support.proc"

-- Descriptors of this Lua process, listed by `ls` through os.execute into
-- a file (a popen pipe would be counted while the child still shares it).
local function open_fds(tmp)
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  local file = tmp .. "/fds.txt"
  assert(os.execute("ls -l /proc/" .. pid .. "/fd > " .. file))
  local out = proc.read_file(file)
  os.remove(file)
  -- Only pipes and /dev/null: what this module opens. Sockets of other
  -- specs' connection pools come and go with the garbage collector.
  local n, list = 0, {}
  for fd, target in out:gmatch(" (%d+) %-> ([^\n]*)") do
    if target:match("^pipe:") or target == "/dev/null" then
      n = n + 1
      list[#list + 1] = fd .. " -> " .. target
    end
  end
  return n, table.concat(list, "\n")
end

-- Our environment without the sanitizer build's preload (make check-asan).
local function clean_env()
  local env = process.environ()
  env.LD_PRELOAD = nil
  return env
end

local function run(fn)
  local res = table.pack(aws.run(fn))
  if res[1] == nil and res[2] then error(tostring(res[2]), 0) end
  return table.unpack(res, 1, res.n)
end

local function collect(opts)
  local lines = {}
  opts.on_line = function(stream, line) lines[#lines + 1] = { stream, line } end
  local p = assert(process.spawn(opts))
  local st = assert(p:wait(30))
  return st, lines, p
end

-- No zombie of ours: a reaped child has no /proc entry left, and a pid
-- reused since then would not be in state Z.
local function not_zombie(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return true end
  local s = f:read("a")
  f:close()
  -- a zombie of ours would show state Z; a reused pid would not be our child
  return not s:match("^%d+ %b() Z")
end

describe("aio_aws.process", function()
  local fds_before, tmp
  setup(function()
    tmp = proc.tmpdir("aio-process")
    -- The loop's own descriptors (epoll, signal pipe) exist from its first use on.
    run(function() assert(process.run({ "true" })) end)
  end)
  teardown(function() if tmp then proc.rmdir(tmp) end end)
  local listing_before
  before_each(function()
    collectgarbage()
    collectgarbage()
    fds_before, listing_before = open_fds(tmp)
  end)
  after_each(function()
    collectgarbage()
    collectgarbage()
    local s = core.stats()
    assert.are.same({ tasks = 0, timers = 0 }, { tasks = s.tasks, timers = s.timers })
    local n, listing = open_fds(tmp)
    assert.are.equal(fds_before, n, listing_before .. "\n---\n" .. listing)
  end)

  describe("spawn", function()
    it("delivers stdout and stderr lines in order, the last partial line at the end", function()
      local st, lines = run(function()
        return collect { argv = { "sh", "-c", "echo one; echo two >&2; echo three; printf 'no newline'" } }
      end)
      assert.are.same({ exit_code = 0 }, st)
      local out, err = {}, {}
      for _, l in ipairs(lines) do
        if l[1] == "stdout" then out[#out + 1] = l[2] else err[#err + 1] = l[2] end
      end
      assert.are.same({ "one", "three", "no newline" }, out)
      assert.are.same({ "two" }, err)
    end)

    it("keeps empty lines and carriage returns", function()
      local _, lines = run(function()
        return collect { argv = { "printf", "a\n\nb\r\n\n" } }
      end)
      assert.are.same({ { "stdout", "a" }, { "stdout", "" }, { "stdout", "b\r" }, { "stdout", "" } }, lines)
    end)

    it("passes argv exactly, without a shell", function()
      local _, lines = run(function()
        return collect { argv = { "printf", "%s|", "a b", "$HOME", "*", "'q'", "" } }
      end)
      assert.are.same({ { "stdout", "a b|$HOME|*|'q'||" } }, lines)
    end)

    it("reports exit codes", function()
      run(function()
        for _, code in ipairs { 0, 1, 2, 127, 255 } do
          local p = assert(process.spawn { argv = { "sh", "-c", "exit " .. code } })
          local st = assert(p:wait(10))
          assert.are.same({ exit_code = code }, st)
          assert.are.equal(code, p.exit_code)
        end
      end)
    end)

    it("reports the signal that ended the child", function()
      run(function()
        for _, sig in ipairs { "TERM", "KILL", "INT", "SEGV", "USR1" } do
          -- without the sanitizer preload, whose SEGV handler would abort instead
          local p = assert(process.spawn { argv = { "sh", "-c", "kill -" .. sig .. " $$" }, env = clean_env() })
          assert.are.same({ signal = sig }, assert(p:wait(10)))
        end
      end)
    end)

    it("kill sends TERM by default, or the signal named, to a running child", function()
      run(function()
        local p = assert(process.spawn { argv = { "sleep", "30" } })
        assert.is_true(p:kill())
        assert.are.same({ signal = "TERM" }, assert(p:wait(10)))
        p = assert(process.spawn { argv = { "sleep", "30" } })
        assert.is_true(p:kill("KILL"))
        assert.are.same({ signal = "KILL" }, assert(p:wait(10)))
        p = assert(process.spawn { argv = { "sleep", "30" } })
        assert.is_true(p:kill(9))
        assert.are.same({ signal = "KILL" }, assert(p:wait(10)))
        -- after the exit: nil, err (the pid may belong to someone else now)
        local ok, err = p:kill("TERM")
        assert.is_nil(ok)
        assert.are.equal("ProcessExited", err.code)
      end)
    end)

    it("kill reaches the whole process group (what a shell started)", function()
      run(function()
        local pidfile = tmp .. "/grandchild.pid"
        -- The background sleep keeps stdout open: without the group kill,
        -- wait would hang until it ends.
        local p = assert(process.spawn { argv = { "sh", "-c", "sleep 30 & echo $! > " .. pidfile .. "; wait" },
          on_line = function() end })
        while not proc.read_file(pidfile) or not proc.read_file(pidfile):match("%d") do aws.sleep(0.01) end
        local gpid = proc.read_file(pidfile):match("%d+")
        p:kill("TERM")
        assert.are.same({ signal = "TERM" }, assert(p:wait(10)))
        -- the grandchild was not our child (init reaps it); it must be dead or dying
        for _ = 1, 500 do
          if not proc.alive(tonumber(gpid)) then break end
          aws.sleep(0.01)
        end
        assert.is_false(proc.alive(tonumber(gpid)))
      end)
    end)

    it("wait times out with a Timeout error while the child keeps running", function()
      run(function()
        local p = assert(process.spawn { argv = { "sleep", "30" } })
        local st, err = p:wait(0.05)
        assert.is_nil(st)
        assert.are.equal("Timeout", err.code)
        assert.is_false(p:done())
        assert.is_true(p:kill("KILL"))
        assert.are.same({ signal = "KILL" }, assert(p:wait(10)))
        assert.is_true(p:done())
      end)
    end)

    it("several tasks may wait for the same process", function()
      run(function()
        local p = assert(process.spawn { argv = { "sh", "-c", "exit 7" } })
        local res = aws.gather(function() return p:wait(10) end, function() return p:wait(10) end)
        assert.are.same({ exit_code = 7 }, res[1])
        assert.are.same({ exit_code = 7 }, res[2])
      end)
    end)

    it("a cancelled waiter does not disturb the process", function()
      run(function()
        local p = assert(process.spawn { argv = { "sh", "-c", "read x; echo got $x" }, stdin = "z\n",
          on_line = function() end })
        local t = aws.spawn(function() return p:wait() end)
        aws.sleep(0)
        t:cancel()
        assert.are.same({ exit_code = 0 }, assert(p:wait(10)))
      end)
    end)

    it("feeds stdin, and a child that does not read it is no problem", function()
      local big = ("0123456789abcdef"):rep(65536 * 4) -- 4 MiB: more than a pipe holds
      local r = run(function() return process.run({ "cat" }, { stdin = big, max_output = #big + 1 }) end)
      assert.are.equal(0, r.exit_code)
      assert.are.equal(#big, #r.stdout)
      assert.is_true(r.stdout == big)
      -- `true` exits at once: the write gets EPIPE, not a SIGPIPE for us
      r = run(function() return process.run({ "true" }, { stdin = big }) end)
      assert.are.equal(0, r.exit_code)
      -- empty stdin is an immediate EOF
      r = run(function() return process.run({ "wc", "-c" }, { stdin = "" }) end)
      assert.are.equal("0", r.stdout:match("%d+"))
      -- no stdin: /dev/null
      r = run(function() return process.run({ "wc", "-c" }) end)
      assert.are.equal("0", r.stdout:match("%d+"))
    end)

    it("delivers 10 MB of output line by line", function()
      -- `yes` repeats its argument plus "\n": 1048576 lines of 10 bytes.
      local n, bytes, bad = 0, 0, 0
      local st = run(function()
        local p = assert(process.spawn { argv = { "sh", "-c", "yes 123456789 | head -n 1048576" },
          on_line = function(stream, line)
            n = n + 1
            bytes = bytes + #line + 1
            if stream ~= "stdout" or line ~= "123456789" then bad = bad + 1 end
          end })
        return p:wait(120)
      end)
      assert.are.same({ exit_code = 0 }, st)
      assert.are.equal(1048576, n)
      assert.are.equal(10485760, bytes)
      assert.are.equal(0, bad)
    end)

    it("on_line may wait (reading pauses meanwhile); no line is lost", function()
      local n, waits = 0, 0
      run(function()
        local p = assert(process.spawn { argv = { "sh", "-c", "yes line | head -n 200000" },
          on_line = function(_, line)
            assert(line == "line")
            n = n + 1
            if n % 20000 == 0 then aws.sleep(0.01); waits = waits + 1 end
          end })
        assert.are.same({ exit_code = 0 }, assert(p:wait(60)))
      end)
      assert.are.same({ 200000, 10 }, { n, waits })
    end)

    it("splits a very long line into 256 KiB pieces", function()
      local pieces = {}
      run(function()
        local p = assert(process.spawn { argv = { "sh", "-c", "head -c 600000 /dev/zero | tr '\\0' x; echo; echo end" },
          on_line = function(_, line) pieces[#pieces + 1] = line end })
        return p:wait(30)
      end)
      assert.are.equal(4, #pieces)
      assert.are.equal(262144, #pieces[1])
      assert.are.equal(262144, #pieces[2])
      assert.are.equal(600000 - 2 * 262144, #pieces[3])
      assert.are.equal(("x"):rep(262144), pieces[1])
      assert.are.equal("end", pieces[4])
    end)

    it("runs 100 processes at once and leaves no zombie", function()
      local pids, outs = {}, {}
      run(function()
        local ps = {}
        for i = 1, 100 do
          ps[i] = assert(process.spawn { argv = { "sh", "-c", "sleep 0.1; echo $0", tostring(i) },
            on_line = function(_, line) outs[i] = line end })
          pids[i] = ps[i].pid
        end
        for i = 1, 100 do assert.are.same({ exit_code = 0 }, assert(ps[i]:wait(60))) end
      end)
      for i = 1, 100 do
        assert.are.equal(tostring(i), outs[i])
        assert.is_true(not_zombie(pids[i]), "zombie " .. pids[i])
      end
    end)

    it("replaces the environment when env is given, inherits it otherwise", function()
      run(function()
        local r = assert(process.run({ "env" }, { env = { FOO = "bar", N = 5 } }))
        local got = {}
        for l in r.stdout:gmatch("[^\n]+") do got[#got + 1] = l end
        table.sort(got)
        assert.are.same({ "FOO=bar", "N=5" }, got)
        r = assert(process.run({ "env" }, { env = {} }))
        assert.are.equal("", r.stdout)
        local env = process.environ()
        assert.are.equal(os.getenv("PATH"), env.PATH)
        env.AIO_PROCESS_SPEC = "x y"
        r = assert(process.run({ "sh", "-c", 'printf "%s|%s" "$AIO_PROCESS_SPEC" "$PATH"' }, { env = env }))
        assert.are.equal("x y|" .. os.getenv("PATH"), r.stdout)
        -- inherited
        r = assert(process.run({ "sh", "-c", 'printf %s "$PATH"' }))
        assert.are.equal(os.getenv("PATH"), r.stdout)
      end)
    end)

    it("runs in cwd", function()
      run(function()
        local r = assert(process.run({ "pwd", "-P" }, { cwd = tmp }))
        assert.are.equal(proc.sh("cd " .. proc.quote(tmp) .. " && pwd -P"), r.stdout:gsub("\n$", ""))
      end)
    end)

    it("passes only fds 0-2 to the child, even ones we opened without CLOEXEC", function()
      local f = assert(io.open(tmp .. "/open-file", "w")) -- fopen: no O_CLOEXEC
      local r = run(function() return process.run({ "ls", "/proc/self/fd" }) end)
      f:close()
      os.remove(tmp .. "/open-file")
      local fds = {}
      for n in r.stdout:gmatch("%d+") do fds[#fds + 1] = tonumber(n) end
      -- ls itself holds one more: the directory it lists
      assert.are.same({ 0, 1, 2, 3 }, fds)
    end)

    it("starts children with default signal dispositions (SIGPIPE ends `yes`)", function()
      local r = run(function() return process.run({ "sh", "-c", "yes | head -n 2" }, { timeout = 20 }) end)
      assert.are.same({ 0, "y\ny\n" }, { r.exit_code, r.stdout })
    end)

    it("returns nil, SpawnError for programs that cannot run", function()
      run(function()
        local p, err = process.spawn { argv = { "/nonexistent/program" } }
        assert.is_nil(p)
        assert.are.equal("SpawnError", err.code)
        assert.matches("cannot run '/nonexistent/program': No such file or directory", err.message, 1, true)
        p, err = process.spawn { argv = { "no-such-program-aio-aws" } }
        assert.is_nil(p)
        assert.matches("No such file or directory", err.message, 1, true)
        local script = tmp .. "/not-executable"
        local f = assert(io.open(script, "w")); f:write("#!/bin/sh\n"); f:close()
        p, err = process.spawn { argv = { script } }
        assert.is_nil(p)
        assert.matches("Permission denied", err.message, 1, true)
        os.remove(script)
        p, err = process.spawn { argv = { "true" }, cwd = tmp .. "/missing" }
        assert.is_nil(p)
        assert.matches("working directory", err.message, 1, true)
        p, err = process.run({ "true" }, { cwd = "/etc/passwd" })
        assert.is_nil(p)
        assert.matches("Not a directory", err.message, 1, true)
      end)
    end)

    it("an on_line that raises stops the callbacks and makes wait return CallbackError", function()
      local calls = 0
      run(function()
        local p = assert(process.spawn { argv = { "sh", "-c", "echo a; echo b; echo c" },
          on_line = function() calls = calls + 1; error("boom") end })
        local st, err = p:wait(10)
        assert.is_nil(st)
        assert.are.equal("CallbackError", err.code)
        assert.matches("boom", err.message)
      end)
      assert.are.equal(1, calls)
    end)

    it("die_with_parent: the child is killed when the spawning process dies", function()
      local script = tmp .. "/parent.lua"
      local f = assert(io.open(script, "w"))
      f:write([[
        local aws = require "aio_aws"
        local process = require "aio_aws.process"
        aws.run(function()
          local a = assert(process.spawn { argv = { "sleep", "30" }, die_with_parent = true })
          local b = assert(process.spawn { argv = { "sleep", "30" } })
          print(a.pid, b.pid)
          io.stdout:flush()
          aws.sleep(30)
        end)
      ]])
      f:close()
      local pids = {}
      run(function()
        local env = clean_env()
        env.LUA_PATH = "lua/?.lua;lua/?/init.lua;;"
        env.LUA_CPATH = "lua/?.so;;"
        local parent = assert(process.spawn { argv = { "lua5.4", script }, env = env,
          on_line = function(_, line) for pid in line:gmatch("%d+") do pids[#pids + 1] = tonumber(pid) end end })
        while #pids < 2 do aws.sleep(0.01) end
        parent:kill("KILL")
        assert.are.same({ signal = "KILL" }, assert(parent:wait(10)))
        -- the marked child follows its parent; the other one lives on
        for _ = 1, 500 do
          if not proc.alive(pids[1]) then break end
          aws.sleep(0.01)
        end
      end)
      local a_alive, b_alive = proc.alive(pids[1]), proc.alive(pids[2])
      os.execute("kill -9 " .. pids[2] .. " 2>/dev/null")
      assert.is_false(a_alive)
      assert.is_true(b_alive)
    end)

    it("spawn works outside a task; the loop reads the output later", function()
      local got = {}
      local p = assert(process.spawn { argv = { "echo", "later" }, on_line = function(_, l) got[#got + 1] = l end })
      run(function() return p:wait(10) end)
      assert.are.same({ "later" }, got)
      assert.matches("^aio_aws.Process %(pid %d+, exit 0%)$", tostring(p))
    end)
  end)

  describe("run", function()
    it("collects stdout and stderr as bytes", function()
      local r = run(function()
        return process.run({ "sh", "-c", "printf 'a\\nb'; printf 'e\\0x' >&2; exit 4" })
      end)
      assert.are.same({ exit_code = 4, stdout = "a\nb", stderr = "e\0x", truncated = false }, r)
    end)

    it("keeps at most max_output bytes per stream and says so", function()
      local r = run(function()
        return process.run({ "sh", "-c", "head -c 10485760 /dev/zero" }, { max_output = 1000 })
      end)
      assert.are.equal(0, r.exit_code)
      assert.are.equal(1000, #r.stdout)
      assert.is_true(r.truncated)
      r = run(function()
        return process.run({ "sh", "-c", "head -c 10485760 /dev/zero | tr '\\0' z" }, { max_output = 20 * 1048576 })
      end)
      assert.are.equal(10485760, #r.stdout)
      assert.are.equal(("z"):rep(10485760), r.stdout)
      assert.is_false(r.truncated)
    end)

    it("kills the child at the timeout and returns Timeout", function()
      local r, err = aws.run(function() return process.run({ "sleep", "30" }, { timeout = 0.1 }) end)
      assert.is_nil(r)
      assert.are.equal("Timeout", err.code)
    end)
  end)

  describe("misuse raises", function()
    it("on bad arguments", function()
      assert.has_error(function() process.spawn() end, "process.spawn: expected an options table, got nil")
      assert.has_error(function() process.spawn { argv = "ls" } end, "process.spawn: argv must be a list of strings")
      assert.has_error(function() process.spawn { argv = {} } end, "process.spawn: argv must not be empty")
      assert.has_error(function() process.spawn { argv = { "a", 1 } } end,
        "process.spawn: argv[2] must be a string, got number")
      assert.has_error(function() process.spawn { argv = { "a", x = 1 } } end)
      assert.has_error(function() process.spawn { argv = { "a\0b" } } end)
      assert.has_error(function() process.spawn { argv = { "true" }, env = "X=1" } end)
      assert.has_error(function() process.spawn { argv = { "true" }, env = { ["A=B"] = "1" } } end)
      assert.has_error(function() process.spawn { argv = { "true" }, env = { A = true } } end)
      assert.has_error(function() process.spawn { argv = { "true" }, env = { "X=1" } } end)
      assert.has_error(function() process.spawn { argv = { "true" }, cwd = 1 } end)
      assert.has_error(function() process.spawn { argv = { "true" }, stdin = {} } end)
      assert.has_error(function() process.spawn { argv = { "true" }, on_line = "print" } end)
      assert.has_error(function() process.spawn { argv = { "true" }, die_with_parent = 1 } end)
      assert.has_error(function() process.run("ls") end)
      assert.has_error(function() process.run({ "true" }, 5) end)
      assert.has_error(function() process.run({ "true" }, { timeout = -1 }) end)
      assert.has_error(function() process.run({ "true" }, { max_output = 1.5 }) end)
      assert.has_error(function() process.run({ "true" }) end,
        "aio_aws: process.run must be called inside a task (use aws.run or aws.spawn)")
    end)

    it("on a bad signal or timeout, and waiting outside a task", function()
      run(function()
        local p = assert(process.spawn { argv = { "sleep", "30" } })
        assert.has_error(function() p:kill("NOPE") end, "Process:kill: unknown signal NOPE")
        assert.has_error(function() p:kill(0) end)
        assert.has_error(function() p:wait(-1) end, "Process:wait: timeout must be a number >= 0")
        assert.has_error(function() p:wait("1") end)
        p:kill("KILL")
        p:wait()
      end)
      local p = assert(process.spawn { argv = { "sleep", "30" } })
      assert.has_error(function() p:wait() end)
      p:kill("KILL")
      run(function() p:wait() end)
    end)
  end)

  it("refuses a host loop that is not libev's default loop, with a clear error", function()
    local exe = tmp .. "/host"
    local out, ok = proc.sh("cc -Wall -O1 -o " .. proc.quote(exe)
      .. " examples/embed/host.c -Icsrc $(pkg-config --cflags --libs lua5.4) -lev 2>&1")
    assert(ok, out)
    local script = tmp .. "/script.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      local process = require "aio_aws.process"
      local p, err = process.spawn{argv = {"true"}}
      print("result", p, err and err.code, err and err.message)
    ]])
    f:close()
    local cpath = (os.getenv("AIO_AWS_CPATH") or "") .. ";lua/?.so;;"
    local res = proc.sh(("env -u LD_PRELOAD LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH=%s %s %s 2>&1")
      :format(proc.quote(cpath:gsub("[^;]*asan[^;]*;", "")), proc.quote(exe), proc.quote(script)))
    assert.matches("result\tnil\tSpawnError\taio_aws.process needs libev's default loop", res, 1, true)
  end)
end)
