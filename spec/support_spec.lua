-- luacheck: std +busted
-- The spec support itself: servers start, every location answers as
-- documented (checked with the curl command line tool, not with the client
-- under development), the blackholes fail the way they promise, and stop()
-- leaves no process behind.
local proc = require "support.proc"
local tls = require "support.tls"
local nginx = require "support.nginx"
local blackhole = require "support.blackhole"

local q = proc.quote

-- True when a process with this pid exists (`kill -0`). Everything started
-- through support.proc is reaped by stop(), so no zombie answers this.
local function pid_exists(pid)
  return os.execute(("kill -0 %d 2>/dev/null"):format(pid)) == true
end

local function dir_exists(path)
  return os.execute("test -d " .. q(path)) == true
end

-- Run curl; returns its exit code, stdout and stderr. `work` is a spec's
-- temp dir (for stderr).
local work
local function curl(args)
  local errfile = work .. "/curl.err"
  -- bounded: a server that stops answering fails the spec instead of hanging it
  local f = assert(io.popen("env -u LD_PRELOAD curl -sS --max-time 60 " .. args .. " 2>" .. q(errfile)))
  local out = f:read("a")
  local _, _, code = f:close()
  return code, out, proc.read_file(errfile) or ""
end

describe("support.proc", function()
  it("free_port returns a port nothing listens on", function()
    local port = proc.free_port()
    assert.is_true(port > 0 and port < 65536)
    assert.is_nil((proc.wait_port(port, { timeout = 0.1 })))
  end)

  it("start and stop: a running child, reaped by stop, with its temp dir removed", function()
    local p = proc.start{ argv = { "sleep", "600" } }
    finally(function() p:stop() end)
    assert.is_true(p:alive())
    assert.is_true(pid_exists(p.pid))
    local log_dir = p.log:match("^(.*)/")
    assert.is_true(dir_exists(log_dir))
    local ok, how, code = p:stop()
    assert.is_true(ok)
    assert.same({ "signal", 15 }, { how, code })
    assert.is_false(pid_exists(p.pid))
    assert.is_false(dir_exists(log_dir))
    assert.is_true(p:stop()) -- idempotent
    for _, pid in ipairs(proc.running()) do assert.not_equal(p.pid, pid) end
  end)

  it("stop escalates to SIGKILL when SIGTERM is ignored", function()
    local p = proc.start{ argv = { "/usr/bin/python3", "-c", "import signal, time; "
      .. "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)" } }
    finally(function() p:stop() end)
    assert.equal("ready", p:wait_log("(ready)"))
    local _, how, code = p:stop(0.3)
    assert.same({ "signal", 9 }, { how, code })
    assert.is_false(pid_exists(p.pid))
  end)

  it("wait_port gives up as soon as the process exits, quoting its output", function()
    local p = proc.start{ argv = { "sh", "-c", "echo 'bind: no luck today'; exit 3" } }
    finally(function() p:stop() end)
    local t0 = proc.now()
    local ok, err = p:wait_port(proc.free_port(), 10)
    assert.is_nil(ok)
    assert.is_true(proc.now() - t0 < 5)
    assert.matches("exited before", err)
    assert.matches("bind: no luck today", err, 1, true)
  end)

  it("tmpdir makes directories under TMPDIR and rmdir removes only those", function()
    local d = proc.tmpdir("spec")
    local base = os.getenv("TMPDIR")
    if not base or base == "" then base = "/tmp" end
    assert.equal(base .. "/aio-aws-spec-", d:sub(1, #base + 14))
    assert.is_true(dir_exists(d))
    proc.rmdir(d)
    assert.is_false(dir_exists(d))
    assert.has_error(function() proc.rmdir("/") end)
  end)
end)

describe("support.tls", function()
  it("makes a server certificate for 127.0.0.1 and localhost signed by a fresh CA", function()
    local t = assert(tls.generate())
    finally(function() t:remove() end)
    for _, check in ipairs{
      "-CAfile " .. q(t.ca_file) .. " -verify_ip 127.0.0.1",
      "-CAfile " .. q(t.ca_file) .. " -verify_hostname localhost",
      "-CApath " .. q(t.capath) .. " -verify_ip 127.0.0.1",
    } do
      local out, ok = proc.sh("openssl verify " .. check .. " " .. q(t.cert_file) .. " 2>&1")
      assert.is_true(ok, out)
    end
    local _, wrong = proc.sh("openssl verify -CAfile " .. q(t.ca_file) .. " -verify_hostname example.com "
      .. q(t.cert_file) .. " 2>&1")
    assert.is_false(wrong)
    t:remove()
    assert.is_false(dir_exists(t.dir))
  end)
end)

describe("support.nginx", function()
  local srv

  setup(function()
    work = proc.tmpdir("spec")
    srv = nginx.start{ slowstart_delay = 2 }
  end)

  teardown(function()
    if srv then srv:stop() end
    proc.rmdir(work)
  end)

  it("/echo?i=N answers exactly N", function()
    for _, i in ipairs{ "0", "7", "1999" } do
      local code, out = curl(q(srv:url("/echo?i=" .. i)))
      assert.equal(0, code)
      assert.equal(i, out)
    end
  end)

  it("/small answers 200 with 100 bytes", function()
    local code, out = curl("-w '\n%{http_code}' " .. q(srv:url("/small")))
    assert.equal(0, code)
    local body, status = out:match("^(.*)\n(%d+)$")
    assert.equal("200", status)
    assert.equal(100, #body)
  end)

  it("/status/NNN answers NNN", function()
    for _, status in ipairs{ 200, 204, 404, 500, 503 } do
      local code, out = curl("-o /dev/null -w '%{http_code} %{size_download}' " .. q(srv:url("/status/" .. status)))
      assert.equal(0, code)
      assert.equal(status .. " " .. (status == 204 and 0 or 11), out)
    end
  end)

  it("/multi repeats X-Multi (a then b) and Set-Cookie", function()
    local code, out = curl("-D - -o /dev/null " .. q(srv:url("/multi")))
    assert.equal(0, code)
    local multi, cookies = {}, {}
    for name, value in out:gmatch("([%w-]+): ([^\r\n]*)") do
      if name:lower() == "x-multi" then multi[#multi + 1] = value end
      if name:lower() == "set-cookie" then cookies[#cookies + 1] = value end
    end
    assert.same({ "a", "b" }, multi)
    assert.same({ "a=1; Path=/", "b=2; Path=/" }, cookies)
  end)

  it("/reqheader echoes the method and the headers the client sent", function()
    local code, out = curl("-X PUT -H 'X-Test: hello there' -H 'Expect: 100-continue' --data-binary abc "
      .. q(srv:url("/reqheader")))
    assert.equal(0, code)
    assert.matches("method: PUT\n", out, 1, true)
    assert.matches("x-test: hello there\n", out, 1, true)
    assert.matches("expect: 100-continue\n", out, 1, true)
    assert.matches("content-length: 3\n", out, 1, true)
    code, out = curl(q(srv:url("/reqheader")))
    assert.equal(0, code)
    assert.matches("method: GET\nuri: /reqheader\nx-test: \nexpect: \n", out, 1, true)
  end)

  it("/slow trips a total timeout and a low-speed limit", function()
    local code, out = curl("-o /dev/null -w '%{http_code} %{size_download}' --max-time 1 " .. q(srv:url("/slow")))
    assert.equal(28, code)
    local status, size = out:match("^(%d+) (%d+)$")
    assert.equal("200", status)
    size = tonumber(size)
    assert.is_true(size > 0 and size < 200 * 1024, "received " .. size)
    local _, err
    code, _, err = curl("-o /dev/null --speed-limit 100000 --speed-time 1 " .. q(srv:url("/slow")))
    assert.equal(28, code)
    assert.matches("too slow", err)
  end)

  it("/slowstart sends nothing before the delay, then 200", function()
    local code, out = curl("-o /dev/null -w '%{size_header}' --max-time 1 " .. q(srv:url("/slowstart")))
    assert.equal(28, code)
    assert.equal("0", out)
    code, out = curl("-w '\n%{http_code} %{time_starttransfer}' " .. q(srv:url("/slowstart")))
    assert.equal(0, code)
    local body, status, t = out:match("^(.*)\n(%d+) ([%d.]+)$")
    assert.same({ "late\n", "200" }, { body, status })
    assert.is_true(tonumber(t) >= 1.9, "first byte after " .. t .. " s")
  end)

  it("/close closes the connection without a response", function()
    local code, _, err = curl(q(srv:url("/close")))
    assert.equal(52, code)
    assert.matches("Empty reply", err)
  end)

  it("/files/ takes a PUT and serves it back", function()
    local src, back = work .. "/upload.bin", work .. "/download.bin"
    assert.is_true(os.execute("head -c 3000000 /dev/urandom > " .. q(src)))
    local code, out = curl("-T " .. q(src) .. " -o /dev/null -w '%{http_code}' " .. q(srv:url("/files/a/b/up.bin")))
    assert.same({ 0, "201" }, { code, out })
    code = curl("-o " .. q(back) .. " " .. q(srv:url("/files/a/b/up.bin")))
    assert.equal(0, code)
    assert.is_true(os.execute(("cmp -s %s %s"):format(q(src), q(back))))
    assert.is_true(os.execute(("cmp -s %s %s"):format(q(src), q(srv.files_dir .. "/a/b/up.bin"))))
  end)

  it("/big has big_size bytes (100 MiB by default)", function()
    assert.equal(100 * 1024 * 1024, srv.big_size)
    local code, out = curl("-o /dev/null -w '%{http_code} %{size_download}' " .. q(srv:url("/big")))
    assert.equal(0, code)
    assert.equal("200 " .. srv.big_size, out)
  end)

  it("the access log shows keep-alive reuse per connection", function()
    srv:reset_access_log()
    -- One curl invocation, three URLs: one connection, requests 1, 2, 3.
    local code = curl("-o /dev/null -o /dev/null -o /dev/null "
      .. q(srv:url("/echo?i=1")) .. " " .. q(srv:url("/echo?i=2")) .. " " .. q(srv:url("/status/404")))
    assert.equal(0, code)
    -- A second invocation: a second connection.
    assert.equal(0, (curl("-o /dev/null " .. q(srv:url("/small")))))
    local lines = srv:access_log_lines{ min = 4 }
    assert.equal(4, #lines)
    assert.same({ 1, 2, 3, 1 }, { lines[1].requests, lines[2].requests, lines[3].requests, lines[4].requests })
    assert.same({ "GET", "/status/404", 404, srv.port },
      { lines[3].method, lines[3].uri, lines[3].status, lines[3].port })
    assert.equal(lines[1].connection, lines[3].connection)
    assert.equal(2, nginx.count_connections(lines))
    assert.equal(1, nginx.count_connections(lines, function(e) return e.status == 404 end))
  end)

  it("serves TLS verified by the generated CA, for 127.0.0.1 and localhost", function()
    local code, out = curl("--cacert " .. q(srv.ca_file) .. " " .. q(srv:tls_url("/echo?i=42")))
    assert.same({ 0, "42" }, { code, out })
    code, out = curl("--capath " .. q(srv.capath) .. " --resolve localhost:" .. srv.tls_port .. ":127.0.0.1 "
      .. q("https://localhost:" .. srv.tls_port .. "/echo?i=43"))
    assert.same({ 0, "43" }, { code, out })
    code = curl(q(srv:tls_url("/small"))) -- the system store does not know our CA
    assert.equal(60, code)
  end)

  it("holds 4,000 concurrent client connections", function()
    local limit = tonumber((proc.sh("ulimit -n")))
    if limit and limit < 4100 then
      pending("needs ulimit -n >= 4100, have " .. limit)
      return
    end
    local socket = require "socket"
    local conns = {}
    finally(function() for _, c in ipairs(conns) do c:close() end end)
    srv:reset_access_log()
    for i = 1, 4000 do
      local c = socket.tcp()
      c:settimeout(10)
      assert(c:connect("127.0.0.1", srv.port))
      conns[i] = c
    end
    -- Every connection is open before any request is sent.
    for i, c in ipairs(conns) do
      assert(c:send(("GET /echo?i=%d HTTP/1.1\r\nHost: x\r\n\r\n"):format(i)))
    end
    for i, c in ipairs(conns) do
      local status = assert(c:receive("*l"))
      assert.equal("HTTP/1.1 200 OK", status)
      local len
      repeat
        local line = assert(c:receive("*l"))
        len = len or tonumber(line:match("^[Cc]ontent%-[Ll]ength: (%d+)"))
      until line == ""
      assert.equal(tostring(i), assert(c:receive(len)))
    end
    assert.equal(4000, nginx.count_connections(srv:access_log_lines{ min = 4000 }))
  end)
end)

describe("support.nginx start and stop", function()
  it("stop leaves no process and no directory behind", function()
    local s = nginx.start{ tls = false, big_size = 1024 }
    finally(function() s:stop() end)
    assert.is_nil(s.tls_port)
    assert.is_true(pid_exists(s.pid))
    assert.is_true(proc.wait_port(s.port, { timeout = 1 }))
    s:stop()
    assert.is_false(pid_exists(s.pid))
    assert.is_false(dir_exists(s.dir))
    assert.is_nil((proc.wait_port(s.port, { timeout = 0.1 })))
  end)

  it("a failed start raises with the tail of nginx's error log", function()
    local before = proc.running()
    local ok, err = pcall(nginx.start, { tls = false, extra = "no_such_directive on;" })
    assert.is_false(ok)
    assert.matches("nginx did not start", err)
    assert.matches('unknown directive "no_such_directive"', err, 1, true)
    assert.same(before, proc.running())
  end)
end)

describe("support.blackhole", function()
  setup(function() work = proc.tmpdir("spec") end)
  teardown(function() proc.rmdir(work) end)

  local function with(mode, fn)
    local bh = blackhole.start(mode)
    finally(function() bh:stop() end)
    fn(bh)
    bh:stop()
    assert.is_false(pid_exists(bh.pid))
  end

  it("noaccept: connects time out", function()
    with("noaccept", function(bh)
      local t0 = proc.now()
      local code, out, err = curl("--connect-timeout 1 --max-time 5 -o /dev/null -w '%{time_connect}' "
        .. q(bh:url("/")))
      assert.equal(28, code)
      assert.equal(0, tonumber(out))
      assert.matches("Failed to connect", err)
      assert.is_true(proc.now() - t0 < 4)
    end)
  end)

  it("silent: connected, then the total timeout fires before any header", function()
    with("silent", function(bh)
      local code, out = curl("--max-time 1 -o /dev/null -w '%{time_connect} %{size_header}' " .. q(bh:url("/")))
      assert.equal(28, code)
      local connect, header = out:match("^([%d.]+) (%d+)$")
      assert.is_true(tonumber(connect) > 0)
      assert.equal("0", header)
    end)
  end)

  it("reset: the connection is reset", function()
    with("reset", function(bh)
      local code, _, err = curl("--max-time 5 " .. q(bh:url("/")))
      assert.equal(56, code)
      assert.matches("reset by peer", err)
    end)
  end)

  it("garbage: the answer is not HTTP", function()
    with("garbage", function(bh)
      local code, _, err = curl("--max-time 5 " .. q(bh:url("/")))
      assert.equal(1, code)
      assert.matches("HTTP/0.9", err)
      local out
      code, out = curl("--http0.9 --max-time 5 " .. q(bh:url("/")))
      assert.equal(0, code)
      assert.matches("this is not HTTP", out, 1, true)
    end)
  end)

  it("rejects unknown modes", function()
    assert.has_error(function() blackhole.start("teapot") end)
  end)
end)
