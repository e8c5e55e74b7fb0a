-- luacheck: std +busted
-- aio_aws.server against real clients on 127.0.0.1: the project's own
-- client (aio_aws.http), curl, and Python (http.client and raw sockets, from
-- spec/support/server_probe.py) for what a polite client never sends.
-- Outside clients run through aio_aws.process, so the server keeps serving
-- in the same loop meanwhile. Bytes are checked with sha256sum / hashlib.
local aws = require "aio_aws"
local server = require "aio_aws.server"
local http = require "aio_aws.http"
local core = require "aio_aws.core"
local cjson = require "cjson"
local socket = require "socket"
local proc = require "support.proc"
local run = require "support.run"
local clients = require "support.server_clients"

local probe, curl = clients.probe, clients.curl

local work

-- The request as the handler saw it, as JSON (no body bytes).
local function echo(req)
  local seen = {}
  for k, v in pairs(req) do
    if k ~= "body" then seen[k] = v end
  end
  seen.body_text = req.body
  return { status = 200, headers = { ["content-type"] = "application/json", ["x-echo"] = "1" },
    body = cjson.encode(seen) }
end

-- Run fn(srv) in aws.run with a server from opts; the server is closed
-- whatever happens, and fn's failure fails the test.
local function with_server(opts, fn)
  opts.handler = opts.handler or echo
  if opts.on_error == nil then opts.on_error = function() end end
  return run(function()
    local srv = assert(server.listen(opts))
    local ok, err = pcall(fn, srv)
    srv:close()
    if not ok then error(err, 0) end
  end)
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

setup(function() work = proc.tmpdir("server") end)
teardown(function() if work then proc.rmdir(work) end end)

describe("server.listen", function()
  it("binds 127.0.0.1 on a free port by default", function()
    with_server({}, function(srv)
      assert.equal("127.0.0.1", srv.host)
      assert.is_true(srv.port > 0)
      assert.equal("http://127.0.0.1:" .. srv.port, srv.url)
      local res = assert(http.request{ url = srv.url .. "/" })
      assert.equal(200, res.status)
      assert.equal("127.0.0.1", cjson.decode(res.body).remote_addr)
    end)
  end)

  it("binds another address only when asked", function()
    with_server({ host = "127.0.0.2" }, function(srv)
      assert.equal("http://127.0.0.2:" .. srv.port, srv.url)
      local res = assert(http.request{ url = srv.url .. "/" })
      assert.equal(200, res.status)
      -- nothing listens on 127.0.0.1 at that port
      local _, err = http.request{ url = "http://127.0.0.1:" .. srv.port .. "/", connect_timeout = 5 }
      assert.equal("ConnectionError", err.code)
    end)
  end)

  it("listens on IPv6 loopback when asked", function()
    with_server({ host = "::1" }, function(srv)
      assert.equal("http://[::1]:" .. srv.port, srv.url)
      local r = curl({ srv.url .. "/v6" })
      assert.equal(200, r.status, r.stderr)
      assert.equal("::1", cjson.decode(r.body).remote_addr)
    end)
  end)

  it("raises on misuse", function()
    local h = function() end
    assert.has_error(function() server.listen() end, "server.listen: expected an options table, got nil")
    assert.has_error(function() server.listen{} end, "server.listen: option 'handler' must be a function")
    assert.has_error(function() server.listen{ handler = "x" } end)
    assert.has_error(function() server.listen{ handler = h, port = "80" } end)
    assert.has_error(function() server.listen{ handler = h, port = 70000 } end)
    assert.has_error(function() server.listen{ handler = h, port = 1.5 } end)
    assert.has_error(function() server.listen{ handler = h, host = 127 } end)
    assert.has_error(function() server.listen{ handler = h, idle_timeout = -1 } end)
    assert.has_error(function() server.listen{ handler = h, spool_threshold = "big" } end)
    assert.has_error(function() server.listen{ handler = h, on_error = 1 } end)
    assert.has_error(function() server.listen{ handler = h, on_response = {} } end)
  end)

  it("returns nil, err when the address cannot be used", function()
    with_server({}, function(srv)
      local s2, err = server.listen{ handler = echo, port = srv.port }
      assert.is_nil(s2)
      assert.equal("ListenError", err.code)
      assert.matches("Address already in use", err.message)
      s2, err = server.listen{ handler = echo, host = "no.such.host.invalid" }
      assert.is_nil(s2)
      assert.equal("ListenError", err.code)
      s2, err = server.listen{ handler = echo, spool_dir = work .. "/missing" }
      assert.is_nil(s2)
      assert.matches("not a directory", tostring(err))
    end)
  end)

  it("is closed by <close> when the task that opened it raises", function()
    local port
    local ok, err = aws.run(function()
      local srv <close> = assert(server.listen{ handler = echo })
      port = srv.port
      error("boom")
    end)
    assert.is_nil(ok)
    assert.matches("boom", tostring(err))
    local c = socket.tcp()
    c:settimeout(5)
    assert.is_nil(c:connect("127.0.0.1", port))
    c:close()
  end)

  it("keeps aws.run going until closed, and a forgotten server is closed by the collector", function()
    local port
    local ok = run(function()
      do
        local srv = assert(server.listen{ handler = echo })
        port = srv.port
        assert.equal(200, assert(http.request{ url = srv.url .. "/" }).status)
      end
      -- nothing refers to the server object any more
      collectgarbage()
      collectgarbage()
      return true
    end)
    -- run() returned: the acceptor ended, so the server was closed
    assert.is_true(ok)
    local c = socket.tcp()
    c:settimeout(5)
    local connected = c:connect("127.0.0.1", port)
    c:close()
    assert.is_nil(connected)
  end)
end)

describe("server with aio_aws.http", function()
  it("hands GET, PUT, POST and HEAD requests to the handler as documented", function()
    with_server({}, function(srv)
      local res = assert(http.request{ url = srv.url .. "/b/k%20x?list-type=2&prefix=a",
        headers = { { "X-Rep", "a" }, { "X-Rep", "b" }, { "X-Case", "MiXeD" } } })
      assert.equal(200, res.status)
      assert.equal("application/json", res.headers["content-type"])
      assert.equal(#res.body, tonumber(res.headers["content-length"]))
      -- IMF-fixdate, RFC 9110 s5.6.7
      assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", res.headers.date)
      local seen = cjson.decode(res.body)
      assert.equal("GET", seen.method)
      assert.equal("/b/k%20x?list-type=2&prefix=a", seen.target)
      assert.equal("/b/k%20x", seen.path)
      assert.equal("list-type=2&prefix=a", seen.query)
      assert.equal("1.1", seen.http_version)
      assert.equal("a,b", seen.headers["x-rep"])
      assert.equal("MiXeD", seen.headers["x-case"])
      assert.equal("127.0.0.1:" .. srv.port, seen.headers.host)
      local names = {}
      for _, pair in ipairs(seen.header_list) do names[#names + 1] = pair[1] end
      local joined = table.concat(names, " ")
      assert.matches("X%-Rep X%-Rep X%-Case", joined)
      assert.equal("", seen.body_text)
      assert.equal(0, seen.body_length)
      assert.equal("127.0.0.1", seen.remote_addr)
      assert.is_true(seen.remote_port > 0)

      res = assert(http.request{ url = srv.url .. "/put", method = "PUT", body = "hello\0world" })
      seen = cjson.decode(res.body)
      assert.equal("PUT", seen.method)
      assert.equal("hello\0world", seen.body_text)
      assert.equal(11, seen.body_length)
      assert.equal("", seen.query)

      res = assert(http.request{ url = srv.url .. "/post", method = "POST", body = "a=1" })
      assert.equal("POST", cjson.decode(res.body).method)
      assert.equal("a=1", cjson.decode(res.body).body_text)
    end)
  end)

  it("sends no body for HEAD and keeps the handler's Content-Length", function()
    with_server({ handler = function(req)
      if req.method == "HEAD" then return { status = 200, headers = { ["Content-Length"] = "1234" } } end
      return { status = 200, body = ("x"):rep(1234) }
    end }, function(srv)
      local res = assert(http.request{ url = srv.url .. "/h", method = "HEAD" })
      assert.equal(200, res.status)
      assert.equal("1234", res.headers["content-length"])
      assert.equal("", res.body)
      -- the connection is still in step: the next GET gets its own body
      res = assert(http.request{ url = srv.url .. "/h" })
      assert.equal(1234, #res.body)
      assert.equal(0, res.new_connections)
    end)
  end)

  it("frames the body itself: 204 without Content-Length, handler framing headers dropped", function()
    with_server({ handler = function(req)
      if req.path == "/204" then return { status = 204, headers = { ["x-a"] = "1" } } end
      return { status = 201, headers = { ["Content-Length"] = "999", ["Transfer-Encoding"] = "chunked",
        ["x-multi"] = { "1", "2" }, ["x-num"] = 42 }, body = "abc" }
    end }, function(srv)
      local res = assert(http.request{ url = srv.url .. "/204" })
      assert.equal(204, res.status)
      assert.is_nil(res.headers["content-length"])
      assert.equal("1", res.headers["x-a"])
      res = assert(http.request{ url = srv.url .. "/x" })
      assert.equal(201, res.status)
      assert.equal("3", res.headers["content-length"])
      assert.is_nil(res.headers["transfer-encoding"])
      assert.equal("abc", res.body)
      assert.equal("1, 2", res.headers["x-multi"])
      assert.equal("42", res.headers["x-num"])
    end)
  end)

  it("keeps connections alive, and closes one when the handler asks", function()
    local ports = {}
    with_server({ handler = function(req)
      ports[#ports + 1] = req.remote_port
      return { status = 200, body = "ok", close = req.path == "/close" }
    end }, function(srv)
      local pool = http.pool{ max_total = 1 }
      local a = assert(http.request{ url = srv.url .. "/1", pool = pool })
      local b = assert(http.request{ url = srv.url .. "/2", pool = pool })
      local c = assert(http.request{ url = srv.url .. "/close", pool = pool })
      local d = assert(http.request{ url = srv.url .. "/4", pool = pool })
      assert.same({ 1, 0, 0, 1 }, { a.new_connections, b.new_connections, c.new_connections, d.new_connections })
      assert.equal("close", c.headers.connection)
      assert.equal(ports[1], ports[2])
      assert.equal(ports[1], ports[3])
      assert.not_equal(ports[1], ports[4])
      pool:close()
    end)
  end)

  it("spools a large body to a temporary file, deleted after the response", function()
    local spool = proc.tmpdir("spool")
    local src = work .. "/upload.bin"
    local seen = {}
    with_server({ spool_threshold = 65536, spool_dir = spool, handler = function(req)
      seen.body, seen.file, seen.length = req.body, req.body_file, req.body_length
      seen.dir_ok = req.body_file and req.body_file:sub(1, #spool + 1) == spool .. "/"
      seen.sha = req.body_file and clients.sha256_file(req.body_file)
      return { status = 200, body = "stored" }
    end }, function(srv)
      clients.random_file(src, 3 * 1048576 + 17)
      local res = assert(http.request{ url = srv.url .. "/big", method = "PUT", body_file = src })
      assert.equal(200, res.status)
      assert.is_nil(seen.body)
      assert.is_true(seen.dir_ok)
      assert.equal(3 * 1048576 + 17, seen.length)
      assert.equal(clients.sha256_file(src), seen.sha)
      assert.is_false(exists(seen.file))
      -- at the threshold it stays in memory
      local small = ("s"):rep(65536)
      assert(http.request{ url = srv.url .. "/small", method = "PUT", body = small })
      assert.equal(small, seen.body)
      assert.is_nil(seen.file)
    end)
    proc.rmdir(spool)
  end)

  it("answers 500 and closes when the body cannot be spooled", function()
    local spool = proc.tmpdir("spool")
    local called = false
    with_server({ spool_threshold = 1000, spool_dir = spool, handler = function()
      called = true
      return { status = 200 }
    end }, function(srv)
      proc.rmdir(spool) -- mkstemp will fail
      local res = assert(http.request{ url = srv.url .. "/x", method = "PUT", body = ("b"):rep(5000) })
      assert.equal(500, res.status)
      assert.equal("close", res.headers.connection)
      assert.is_false(called)
    end)
  end)

  it("streams a response from a file with body_offset and body_length", function()
    local src = work .. "/download.bin"
    local out = work .. "/download.out"
    local off, len = 12345, 5 * 1048576 + 3
    with_server({ handler = function(req)
      if req.path == "/part" then return { status = 200, body_file = src, body_offset = off, body_length = len } end
      if req.path == "/tail" then return { status = 200, body_file = src, body_offset = off } end
      return { status = 200, body_file = src }
    end }, function(srv)
      clients.random_file(src, 8 * 1048576)
      local res = assert(http.request{ url = srv.url .. "/part", sink_file = out })
      assert.equal(200, res.status)
      assert.equal(tostring(len), res.headers["content-length"])
      local want, n = clients.sha256_slice(src, off, len)
      assert.equal(len, n)
      assert.equal(want, clients.sha256_file(out))
      res = assert(http.request{ url = srv.url .. "/tail", sink_file = out })
      assert.equal(tostring(8 * 1048576 - off), res.headers["content-length"])
      assert.equal((clients.sha256_slice(src, off, 8 * 1048576)), clients.sha256_file(out))
      res = assert(http.request{ url = srv.url .. "/all", sink_file = out })
      assert.equal(tostring(8 * 1048576), res.headers["content-length"])
      assert.equal(clients.sha256_file(src), clients.sha256_file(out))
    end)
  end)

  it("answers 500 with a short body when the handler raises, and tells on_error only", function()
    local errs, done = {}, {}
    with_server({
      on_error = function(err) errs[#errs + 1] = tostring(err) end,
      on_response = function(req, status, ok) done[#done + 1] = { req.path, status, ok } end,
      handler = function(req)
        if req.path == "/raise" then error("secret AKIAEXAMPLESECRET leaked") end
        if req.path == "/nil" then return nil end
        if req.path == "/status" then return { status = "200" } end
        if req.path == "/inject" then return { status = 200, headers = { ["x-a"] = "1\r\nSet-Cookie: x" } } end
        if req.path == "/name" then return { status = 200, headers = { ["bad name"] = "1" } } end
        if req.path == "/both" then return { status = 200, body = "a", body_file = "/etc/hostname" } end
        if req.path == "/nofile" then return { status = 200, body_file = work .. "/missing" } end
        if req.path == "/range" then return { status = 200, body = "abc", body_offset = 2, body_length = 5 } end
        if req.path == "/1xx" then return { status = 101 } end
        return { status = 200, body = "fine" }
      end,
    }, function(srv)
      for _, p in ipairs({ "/raise", "/nil", "/status", "/inject", "/name", "/both", "/nofile", "/range", "/1xx" }) do
        local res = assert(http.request{ url = srv.url .. p })
        assert.equal(500, res.status, p)
        assert.equal("Internal Server Error\n", res.body, p)
        assert.is_nil(res.headers["set-cookie"])
      end
      -- the connection survived all of that
      local res = assert(http.request{ url = srv.url .. "/ok" })
      assert.equal("fine", res.body)
    end)
    assert.equal(9, #errs)
    assert.matches("AKIAEXAMPLESECRET", errs[1])
    assert.matches("returned nil", errs[2])
    assert.matches("status", errs[3])
    assert.matches("CR, LF", errs[4])
    assert.matches("not a token", errs[5])
    assert.matches("exclusive", errs[6])
    assert.matches("cannot open response body file", errs[7])
    assert.matches("past the end", errs[8])
    assert.matches("200%.%.999", errs[9])
    assert.same({ "/raise", 500, true }, done[1])
    assert.same({ "/ok", 200, true }, done[10])
  end)

  it("runs handlers concurrently, one task each", function()
    local n, active, peak = 50, 0, 0
    local all_in = aws.Event()
    with_server({ handler = function(req)
      active = active + 1
      if active > peak then peak = active end
      if active == n then all_in:set() end
      all_in:wait(30)
      active = active - 1
      return { status = 200, body = req.path }
    end }, function(srv)
      local fns = {}
      for i = 1, n do
        fns[i] = function() return assert(http.request{ url = srv.url .. "/r" .. i }).body end
      end
      local results, errs = aws.gather(table.unpack(fns))
      assert.is_nil(errs)
      for i = 1, n do assert.equal("/r" .. i, results[i]) end
    end)
    assert.equal(n, peak)
  end)

  it("close() refuses new connections and lets a running handler finish", function()
    local entered, release = aws.Event(), aws.Event()
    run(function()
      local srv = assert(server.listen{ handler = function(req)
        if req.path == "/slow" then
          entered:set()
          release:wait(30)
        end
        return { status = 200, body = "done " .. req.path }
      end })
      local pool = http.pool{}
      assert(http.request{ url = srv.url .. "/warm", pool = pool }) -- an idle keep-alive connection
      local slow = aws.spawn(function() return http.request{ url = srv.url .. "/slow" } end)
      entered:wait(30)
      srv:close()
      assert.is_true(srv:stats().closed)
      assert.equal(1, srv:stats().connections) -- the idle one is gone, the busy one stays
      local _, err = http.request{ url = srv.url .. "/new", connect_timeout = 5 }
      assert.equal("ConnectionError", err.code)
      release:set()
      local res = assert(slow:wait(30))
      assert.equal("done /slow", res.body)
      assert.equal("close", res.headers.connection)
      srv:close() -- idempotent
      pool:close()
    end)
  end)
end)

describe("server with curl", function()
  it("serves GET, HEAD, PUT and POST", function()
    with_server({}, function(srv)
      local r = curl({ "-i", srv.url .. "/c?x=1" })
      assert.equal(0, r.code, r.stderr)
      assert.equal(200, r.status)
      assert.matches("^HTTP/1%.1 200 OK\r\n", r.body)
      assert.matches("\r\n[Xx]%-[Ee]cho: 1\r\n", r.body)
      local seen = cjson.decode(r.body:match("\r\n\r\n(.*)$"))
      assert.equal("/c?x=1", seen.target)
      assert.matches("^curl/", seen.headers["user-agent"])

      r = curl({ "-I", srv.url .. "/h" })
      assert.equal(200, r.status)
      assert.matches("[Cc]ontent%-[Ll]ength: %d+", r.body)

      local f = work .. "/small.txt"
      local fh = assert(io.open(f, "wb")); fh:write("small body\n"); fh:close()
      r = curl({ "-T", f, srv.url .. "/put" })
      seen = cjson.decode(r.body)
      assert.equal("PUT", seen.method)
      assert.equal("small body\n", seen.body_text)

      r = curl({ "--data-binary", "@" .. f, srv.url .. "/post" })
      seen = cjson.decode(r.body)
      assert.equal("POST", seen.method)
      assert.equal("application/x-www-form-urlencoded", seen.headers["content-type"])
      assert.equal("small body\n", seen.body_text)
    end)
  end)

  it("is reused by curl across requests (keep-alive)", function()
    local ports = {}
    with_server({ handler = function(req)
      ports[#ports + 1] = req.remote_port
      return { status = 200, body = "k" }
    end }, function(srv)
      local r = curl({ "-v", srv.url .. "/1", srv.url .. "/2", srv.url .. "/3" })
      assert.equal(0, r.code, r.stderr)
      assert.equal("k\n200k\n200k", r.body) -- -w prints the status after each transfer
      assert.matches("Re%-using existing connection", r.stderr)
      assert.equal(3, #ports)
      assert.equal(ports[1], ports[2])
      assert.equal(ports[2], ports[3])
    end)
  end)

  it("decodes a chunked upload", function()
    local f = work .. "/chunked.bin"
    local seen = {}
    with_server({ spool_threshold = 100000, handler = function(req)
      seen.te = req.headers["transfer-encoding"]
      seen.length = req.body_length
      seen.sha = req.body_file and clients.sha256_file(req.body_file)
      return { status = 200, body = "ok" }
    end }, function(srv)
      clients.random_file(f, 700001)
      local r = curl({ "-H", "Transfer-Encoding: chunked", "--data-binary", "@" .. f, srv.url .. "/ch" })
      assert.equal(200, r.status, r.stderr)
      assert.equal("chunked", seen.te)
      assert.equal(700001, seen.length)
      assert.equal(clients.sha256_file(f), seen.sha)
    end)
  end)

  it("answers Expect: 100-continue before curl sends a large PUT", function()
    local f = work .. "/continue.bin"
    local seen = {}
    with_server({ handler = function(req)
      seen.expect = req.headers.expect
      seen.file = req.body_file
      seen.sha = req.body_file and clients.sha256_file(req.body_file)
      return { status = 200, body = "ok" }
    end }, function(srv)
      clients.random_file(f, 2 * 1048576 + 5)
      local r = curl({ "-v", "-T", f, srv.url .. "/big" })
      assert.equal(200, r.status, r.stderr)
      assert.equal("100-continue", seen.expect)
      assert.matches("< HTTP/1%.1 100 Continue", r.stderr)
      assert.equal(clients.sha256_file(f), seen.sha)
      assert.is_false(exists(seen.file))
    end)
  end)

  it("streams a large file range to curl", function()
    local src = work .. "/range.bin"
    local out = work .. "/range.out"
    local off, len = 1048577, 16 * 1048576
    with_server({ handler = function()
      return { status = 206, headers = { ["content-range"] = ("bytes %d-%d/*"):format(off, off + len - 1) },
        body_file = src, body_offset = off, body_length = len }
    end }, function(srv)
      clients.random_file(src, 20 * 1048576)
      local r = curl({ "-o", out, srv.url .. "/obj" })
      assert.equal(206, r.status, r.stderr)
      assert.equal((clients.sha256_slice(src, off, len)), clients.sha256_file(out))
    end)
  end)

  it("refuses a body over max_body_bytes with 413", function()
    local f = work .. "/over.bin"
    with_server({ max_body_bytes = 1000 }, function(srv)
      clients.random_file(f, 5000)
      local r = curl({ "--data-binary", "@" .. f, srv.url .. "/over" })
      assert.equal(413, r.status, r.stderr)
      -- at the limit it passes
      clients.random_file(f, 1000)
      r = curl({ "--data-binary", "@" .. f, srv.url .. "/at" })
      assert.equal(200, r.status)
      assert.equal(1000, cjson.decode(r.body).body_length)
    end)
  end)
end)

describe("server with raw sockets", function()
  it("answers garbage with 400 and closes the connection", function()
    with_server({}, function(srv)
      local res = probe("garbage", srv.port)
      for name, r in pairs(res) do
        -- RFC 9110 s15.6.6: a major version we do not speak is 505
        assert.equal(name == "future_version" and 505 or 400, r.status, name .. ": " .. r.head)
        assert.equal("eof", r.how, name)
        assert.matches("\r\nConnection: close", r.head, nil, name)
      end
      assert.equal(200, assert(http.request{ url = srv.url .. "/" }).status)
      assert.equal(0, srv:stats().handling)
    end)
  end)

  it("answers truncated requests with 400", function()
    with_server({}, function(srv)
      for name, r in pairs(probe("truncated", srv.port)) do
        assert.equal(400, r.status, name)
        assert.equal("eof", r.how, name)
      end
    end)
  end)

  it("refuses oversized headers with 431 and an oversized target with 414", function()
    with_server({ max_header_bytes = 8192 }, function(srv)
      local r = probe("big_headers", srv.port, 10000)
      assert.equal(431, r.headers.status)
      assert.equal("eof", r.headers.how)
      assert.equal(414, r.target.status)
    end)
    -- the default limit is 64 KiB
    with_server({}, function(srv)
      local r = probe("big_headers", srv.port, 70000)
      assert.equal(431, r.headers.status)
      assert.equal(414, r.target.status)
    end)
  end)

  it("refuses oversized bodies with 413, declared or chunked", function()
    with_server({ max_body_bytes = 4096 }, function(srv)
      local r = probe("big_body", srv.port, 5000)
      assert.equal(413, r.declared.status)
      assert.equal("eof", r.declared.how)
      assert.equal(413, r.chunked.status)
      assert.equal("eof", r.chunked.how)
    end)
  end)

  it("closes a slow-loris connection at request_timeout with 408", function()
    with_server({ idle_timeout = 0.6, request_timeout = 1.5 }, function(srv)
      local r = probe("slowloris", srv.port, 0.1)
      assert.equal(408, r.status)
      assert.equal("eof", r.how)
      assert.is_true(r.sent > 1) -- it did keep sending
    end)
  end)

  it("closes an idle connection at idle_timeout without a response", function()
    with_server({ idle_timeout = 0.3 }, function(srv)
      local r = probe("idle", srv.port)
      assert.equal("eof", r.how)
      assert.equal(0, r.bytes)
    end)
  end)

  it("answers pipelined requests in order", function()
    with_server({}, function(srv)
      local r = probe("pipeline", srv.port)
      assert.equal(3, #r.responses)
      assert.equal("/p1", cjson.decode(r.responses[1].body).target)
      assert.equal("hello", cjson.decode(r.responses[2].body).body_text)
      assert.equal("/p3", cjson.decode(r.responses[3].body).target)
      assert.equal("close", r.responses[3].connection)
      assert.equal("eof", r.how)
    end)
  end)

  it("sends 100 Continue before the client sends the body", function()
    with_server({}, function(srv)
      local r = probe("continue", srv.port, 3000)
      assert.equal("HTTP/1.1 100 Continue", r.interim)
      assert.equal(200, r.status)
      assert.equal(3000, cjson.decode(r.body).body_length)
    end)
  end)

  it("decodes chunked bodies from http.client", function()
    with_server({ handler = function(req)
      return { status = 200, body = core.sha256_hex(req.body) .. " " .. req.body_length }
    end }, function(srv)
      local r = probe("chunked", srv.port, 50000)
      assert.equal(200, r.status)
      assert.equal(r.sha256 .. " " .. math.tointeger(r.size), r.body)
    end)
  end)

  it("adds the trailer fields of a chunked body to the headers", function()
    with_server({}, function(srv)
      local r = probe("trailer", srv.port)
      assert.equal(200, r.status)
      local seen = cjson.decode(r.body)
      assert.equal("abcde", seen.body_text)
      assert.equal("xyz", seen.headers["x-checksum"])
    end)
  end)

  it("speaks HTTP/1.0 and closes after the response", function()
    with_server({}, function(srv)
      local r = probe("http10", srv.port)
      assert.equal(200, r.status)
      assert.equal("eof", r.how)
      assert.matches("^HTTP/1%.1 200", r.head)
      assert.matches("\r\nConnection: close", r.head)
    end)
  end)

  it("keeps http.client's connection alive", function()
    with_server({}, function(srv)
      local r = probe("keepalive", srv.port)
      local port
      for i, pair in ipairs(r.responses) do
        assert.equal(200, pair[1])
        local seen = cjson.decode(pair[2])
        assert.equal("/ka/" .. (i - 1), seen.target)
        port = port or seen.remote_port
        assert.equal(port, seen.remote_port)
      end
    end)
  end)

  it("survives a client that disconnects mid-response", function()
    local src = work .. "/abort.bin"
    local outcome = aws.Event()
    local result
    with_server({
      handler = function(req)
        if req.path == "/big" then return { status = 200, body_file = src } end
        return { status = 200, body = "still here" }
      end,
      on_response = function(req, status, ok, err)
        if req.path == "/big" then result = { status = status, ok = ok, err = err }; outcome:set() end
      end,
    }, function(srv)
      clients.random_file(src, 64 * 1048576)
      local r = probe("disconnect", srv.port, "/big")
      assert.equal(200, r.status)
      assert(outcome:wait(30))
      assert.is_false(result.ok)
      assert.equal("connection closed by the client", result.err)
      assert.equal(0, srv:stats().writing)
      assert.equal("still here", assert(http.request{ url = srv.url .. "/small" }).body)
    end)
  end)

  it("closes a connection whose client stops reading, after idle_timeout", function()
    local src = work .. "/stall.bin"
    local outcome = aws.Event()
    local result
    with_server({
      idle_timeout = 0.5,
      handler = function() return { status = 200, body_file = src } end,
      on_response = function(_, status, ok, err) result = { status = status, ok = ok, err = err }; outcome:set() end,
    }, function(srv)
      clients.random_file(src, 32 * 1048576)
      -- the client hangs up after 5 s; the server gives up well before
      local client = aws.spawn(probe, "stall", srv.port, "/big", 5)
      assert(outcome:wait(60))
      assert.is_false(result.ok)
      assert.equal("connection closed: the client read nothing for idle_timeout", result.err)
      assert.equal(0, srv:stats().connections)
      assert(client:wait())
    end)
  end)

  it("does not switch protocols: an Upgrade request is answered and the connection closed", function()
    with_server({}, function(srv)
      local r = probe("upgrade", srv.port)
      assert.equal(200, r.status)
      assert.equal("eof", r.how)
      assert.matches("\r\nConnection: close", r.head)
    end)
  end)

  it("pauses accepting when out of descriptors, and recovers", function()
    run(function()
      local process = require "aio_aws.process"
      local env = process.environ()
      env.LD_PRELOAD, env.AIO_AWS_CPATH = nil, nil
      env.LUA_PATH, env.LUA_CPATH = "lua/?.lua;lua/?/init.lua;;", "lua/?.so;;"
      -- a soft limit well under the 100 connections the probe opens at once
      local r = assert(process.run({ "sh", "-c", 'ulimit -Sn 48 && exec lua5.4 spec/support/server_fdlimit.lua 100' },
        { env = env, timeout = 120 }))
      assert.equal(0, r.exit_code, r.stderr)
      local json = r.stdout:match("^(%b{})")
      local res = cjson.decode(json)
      assert.equal(100, res.ok, r.stdout)
      assert.is_true(res.bodies_ok)
      assert.is_true(tonumber(r.stdout:match("accept_pauses (%d+)")) > 0)
      assert.equal("100", r.stdout:match("served (%d+)"))
    end)
  end)

  it("serves 200 concurrent connections", function()
    local n, active, peak = 200, 0, 0
    local all_in = aws.Event()
    with_server({ handler = function(req)
      active = active + 1
      if active > peak then peak = active end
      if active == n then all_in:set() end
      all_in:wait(60)
      active = active - 1
      return { status = 200, body = req.path:sub(2) }
    end }, function(srv)
      local r = probe("concurrent", srv.port, n)
      assert.equal(n, r.ok, cjson.encode(r.bad))
      assert.is_true(r.bodies_ok)
    end)
    assert.equal(n, peak)
  end)
end)
