-- The HTTP transport (C core: libcurl multi_socket on libev) against a real
-- nginx and misbehaving servers on loopback. Expectations come from the
-- servers' side (nginx's access log, files it stored, md5sum) or from the
-- kernel (RSS), not from the client's own bookkeeping.
local aws = require "aio_aws"
local http = require "aio_aws.http"
local core = require "aio_aws.core"
local nginx = require "support.nginx"
local blackhole = require "support.blackhole"
local proc = require "support.proc"

local srv, tmp
-- Under ASan or valgrind freed memory is held back (quarantine), so RSS
-- says nothing about our buffers: the memory bounds are checked only in the
-- plain run (make test).
local SANITIZED = os.getenv("AIO_AWS_SANITIZED") == "1"

-- Access-log entries of this spec's requests tagged `tag` (nginx may log a
-- request of an earlier spec after reset_access_log).
local function tagged(lines, tag)
  local out = {}
  for _, e in ipairs(lines) do
    if e.uri and e.uri:find("i=" .. tag .. "-", 1, true) then out[#out + 1] = e end
  end
  return out
end

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function md5sum(path)
  return (proc.sh("md5sum " .. proc.quote(path))):match("^(%x+)")
end

local run = require "support.run"

local function quiet()
  collectgarbage()
  local s = core.stats()
  assert.are.same({ tasks = 0, in_flight = 0 }, { tasks = s.tasks, in_flight = s.in_flight })
end

describe("http transport", function()
  setup(function()
    srv = nginx.start({ big_size = 100 * 1024 * 1024, slow_rate = "20k", slowstart_delay = 3 })
    tmp = proc.tmpdir("aio-http-spec")
  end)
  teardown(function()
    if srv then srv:stop() end
    if tmp then proc.rmdir(tmp) end
  end)
  after_each(quiet)

  it("answers a simple GET with status, lower-case headers and body", function()
    local res = run(function() return http.request({ url = srv:url("/echo?i=hello") }) end)
    assert.are.equal(200, res.status)
    assert.are.equal("hello", res.body)
    assert.are.equal("5", res.headers["content-length"])
    assert.is_nil(res.headers["Content-Length"])
  end)

  it("runs 2,000 concurrent requests, each with its own correct answer", function()
    srv:reset_access_log()
    local bad = {}
    run(function()
      local ts = {}
      for i = 1, 2000 do
        ts[i] = aws.spawn(function()
          local res, err = http.request({ url = srv:url("/echo?i=c2k-" .. i) })
          if not res or res.status ~= 200 or res.body ~= "c2k-" .. i then
            bad[#bad + 1] = i .. ": " .. tostring(err or res.body)
          end
        end)
      end
      aws.gather(table.unpack(ts))
    end)
    assert.are.same({}, bad)
    local seen = {}
    for _, e in ipairs(tagged(srv:access_log_lines({ min = 2000 }), "c2k")) do
      seen[tonumber(e.uri:match("c2k%-(%d+)"))] = true
    end
    for i = 1, 2000 do assert(seen[i], "server never saw request " .. i) end
  end)

  it("reuses kept-alive connections: far fewer connections than requests", function()
    srv:reset_access_log()
    run(function()
      local ts = {}
      for w = 1, 8 do
        ts[w] = aws.spawn(function()
          for i = 1, 50 do
            local res = assert(http.request({ url = srv:url("/echo?i=ka-" .. w * 100 + i) }))
            assert.are.equal(200, res.status)
          end
        end)
      end
      aws.gather(table.unpack(ts))
    end)
    local lines = tagged(srv:access_log_lines({ min = 400 }), "ka")
    assert.are.equal(400, #lines)
    local conns = nginx.count_connections(lines)
    assert.is_true(conns <= 16, conns .. " connections for 400 requests")
  end)

  it("respects a pool's total connection limit while all requests succeed", function()
    srv:reset_access_log()
    local ok = 0
    run(function()
      local pool = http.pool({ max_total = 4 })
      local ts = {}
      for i = 1, 200 do
        ts[i] = aws.spawn(function()
          local res = http.request({ url = srv:url("/echo?i=pl-" .. i), pool = pool })
          if res and res.body == "pl-" .. i then ok = ok + 1 end
        end)
      end
      aws.gather(table.unpack(ts))
      pool:close()
    end)
    assert.are.equal(200, ok)
    local conns = nginx.count_connections(tagged(srv:access_log_lines({ min = 200 }), "pl"))
    assert.is_true(conns >= 1 and conns <= 4, conns .. " connections with max_total = 4")
  end)

  it("respects a pool's per-host limit", function()
    srv:reset_access_log()
    run(function()
      local pool = http.pool({ max_per_host = 2 })
      local ts = {}
      for i = 1, 60 do
        ts[i] = aws.spawn(function() assert(http.request({ url = srv:url("/echo?i=ph-" .. i), pool = pool })) end)
      end
      aws.gather(table.unpack(ts))
      pool:close()
    end)
    local conns = nginx.count_connections(tagged(srv:access_log_lines({ min = 60 }), "ph"))
    assert.is_true(conns <= 2, conns .. " connections with max_per_host = 2")
  end)

  it("keeps repeated response headers, in order", function()
    local res = run(function() return http.request({ url = srv:url("/multi") }) end)
    assert.are.equal("a, b", res.headers["x-multi"])
    local seen = {}
    for i = 1, #res.header_list, 2 do
      if res.header_list[i] == "x-multi" or res.header_list[i] == "set-cookie" then
        seen[#seen + 1] = res.header_list[i] .. "=" .. res.header_list[i + 1]
      end
    end
    assert.are.same({ "x-multi=a", "x-multi=b", "set-cookie=a=1; Path=/", "set-cookie=b=2; Path=/" }, seen)
  end)

  it("sends the given method, headers and body, and no Expect: 100-continue", function()
    local body = ("x"):rep(200000)
    local res = run(function()
      return http.request({ method = "POST", url = srv:url("/reqheader"),
        headers = { ["X-Test"] = "value 1" }, body = body })
    end)
    assert.are.equal(200, res.status)
    assert.matches("method: POST\n", res.body, 1, true)
    assert.matches("x-test: value 1\n", res.body, 1, true)
    assert.matches("expect: \n", res.body, 1, true)
    assert.matches("content-length: 200000\n", res.body, 1, true)
  end)

  it("takes headers as a list of pairs, and sends HEAD without a body", function()
    local res = run(function()
      return http.request({ method = "HEAD", url = srv:url("/echo?i=abc"),
        headers = { { "X-Test", "a" }, { "X-Other", "b" } } })
    end)
    assert.are.equal(200, res.status)
    assert.are.equal("3", res.headers["content-length"])
    assert.are.equal("", res.body)
  end)

  it("returns error statuses as responses, not errors", function()
    local a, b = run(function()
      return http.request({ url = srv:url("/status/404") }), http.request({ url = srv:url("/status/503") })
    end)
    assert.are.equal(404, a.status)
    assert.are.equal(503, b.status)
  end)

  it("times out a slow body (total timeout)", function()
    local t0 = core.monotime()
    local res, err = run(function() return http.request({ url = srv:url("/slow"), timeout = 0.3 }) end)
    assert.is_nil(res)
    assert.are.equal("Timeout", err.code)
    assert.is_true(err.retryable)
    assert.is_true(core.monotime() - t0 < 2.5)
  end)

  it("times out a response that never starts", function()
    local res, err = run(function() return http.request({ url = srv:url("/slowstart"), timeout = 0.3 }) end)
    assert.is_nil(res)
    assert.are.equal("Timeout", err.code)
  end)

  it("aborts a transfer below the low-speed limit", function()
    local t0 = core.monotime()
    local res, err = run(function()
      return http.request({ url = srv:url("/slow"), low_speed_limit = 200000, low_speed_time = 1 })
    end)
    assert.is_nil(res)
    assert.are.equal("Timeout", err.code)
    assert.is_true(core.monotime() - t0 < 10)
  end)

  it("read_timeout fails a response that stops arriving, not a steady one", function()
    local bh = blackhole.start("silent")
    finally(function() bh:stop() end)
    local t0 = core.monotime()
    local res, err = run(function() return http.request({ url = bh:url("/"), read_timeout = 0.3 }) end)
    assert.is_nil(res)
    assert.are.equal("Timeout", err.code)
    assert.matches("read_timeout", err.message)
    assert.is_true(core.monotime() - t0 < 2)
    -- /slow sends 20 kB/s for ~50 s, in bursts about a second apart
    -- (nginx's limit_rate): no gap reaches 2 s
    local ok = run(function()
      local r = assert(http.request({ url = srv:url("/slow"), stream = true, read_timeout = 2 }))
      local got = 0
      local deadline = core.monotime() + 3.5
      while core.monotime() < deadline do
        local chunk = assert(r.body:read(1024))
        got = got + #chunk
      end
      r.body:close()
      return got
    end)
    assert.is_true(ok > 40000)
  end)

  it("times out a connect that never completes (connect timeout)", function()
    local bh = blackhole.start("noaccept")
    finally(function() bh:stop() end)
    local t0 = core.monotime()
    local res, err = run(function()
      return http.request({ url = bh:url("/"), connect_timeout = 0.3 })
    end)
    assert.is_nil(res)
    assert.are.equal("Timeout", err.code)
    assert.is_true(core.monotime() - t0 < 3)
  end)

  it("times out a server that accepts and never answers", function()
    local bh = blackhole.start("silent")
    finally(function() bh:stop() end)
    local res, err = run(function() return http.request({ url = bh:url("/"), timeout = 0.3 }) end)
    assert.is_nil(res)
    assert.are.equal("Timeout", err.code)
  end)

  it("reports a server that closes without answering (444) as ConnectionError", function()
    local res, err = run(function() return http.request({ url = srv:url("/close") }) end)
    assert.is_nil(res)
    assert.are.equal("ConnectionError", err.code)
    assert.is_true(err.retryable)
    assert.is_string(err.message)
  end)

  it("reports a connection reset as ConnectionError", function()
    local bh = blackhole.start("reset")
    finally(function() bh:stop() end)
    local res, err = run(function() return http.request({ url = bh:url("/") }) end)
    assert.is_nil(res)
    assert.are.equal("ConnectionError", err.code)
  end)

  it("reports a non-HTTP answer as ProtocolError", function()
    local bh = blackhole.start("garbage")
    finally(function() bh:stop() end)
    local res, err = run(function() return http.request({ url = bh:url("/") }) end)
    assert.is_nil(res)
    assert.are.equal("ProtocolError", err.code)
  end)

  it("gives clear errors for a refused port, an unknown host and a bad URL", function()
    local port = proc.free_port()
    local r1, e1 = run(function() return http.request({ url = "http://127.0.0.1:" .. port .. "/" }) end)
    assert.is_nil(r1)
    assert.are.equal("ConnectionError", e1.code)
    local r2, e2 = run(function() return http.request({ url = "http://no-such-host.invalid/" }) end)
    assert.is_nil(r2)
    assert.are.equal("DNSError", e2.code)
    local r3, e3 = run(function() return http.request({ url = "http://[::1/" }) end)
    assert.is_nil(r3)
    assert.are.equal("InvalidURL", e3.code)
    local r4, e4 = run(function() return http.request({ url = "file:///etc/passwd" }) end)
    assert.is_nil(r4)
    assert.are.equal("InvalidURL", e4.code)
  end)

  it("pins a host name to an address with resolve (curl --resolve)", function()
    -- .invalid never resolves (RFC 6761): only the pin can reach the server
    local port = srv:url("/"):match(":(%d+)/")
    local url = "http://aio-pinned.invalid:" .. port .. "/reqheader"
    local res, err = run(function()
      return http.request({ url = url, resolve = { "aio-pinned.invalid:" .. port .. ":127.0.0.1" } })
    end)
    assert.is_nil(err)
    assert.are.equal(200, res.status)
    -- nginx echoes the Host it received
    assert.truthy(res.body:find("host: aio-pinned.invalid:" .. port, 1, true))
    local r2, e2 = run(function() return http.request({ url = "http://aio-unpinned.invalid:" .. port .. "/" }) end)
    assert.is_nil(r2)
    assert.are.equal("DNSError", e2.code)
    assert.has_error(function()
      run(function() return http.request({ url = url, resolve = "aio-pinned.invalid:1:127.0.0.1" }) end)
    end)
    assert.has_error(function() run(function() return http.request({ url = url, resolve = { 42 } }) end) end)
    assert.has_error(function() run(function() return http.request({ url = url, resolve = { "" } }) end) end)
  end)

  it("sends long header values and every token character in names", function()
    local long = ("v"):rep(5000) -- past the 1 KiB stack buffer
    local name = "X-Test" -- nginx echoes x-test
    local res = run(function()
      return http.request({ url = srv:url("/reqheader"), headers = { [name] = long, ["A!#$%&'*+-.^_`|~9"] = "ok" } })
    end)
    assert.are.equal(200, res.status)
    assert.truthy(res.body:find("x-test: " .. long, 1, true))
  end)

  it("raises on wrong argument types and misuse", function()
    assert.has_error(function() run(function() return http.request("http://x/") end) end)
    assert.has_error(function() run(function() return http.request({}) end) end)
    assert.has_error(function() run(function() return http.request({ url = srv:url("/"), timeout = "1" }) end) end)
    assert.has_error(function() run(function() return http.request({ url = srv:url("/"), headers = 5 }) end) end)
    assert.has_error(function() run(function() return http.request({ url = srv:url("/"), headers = { ["X"] = "a\r\nInjected: 1" } }) end) end)
    -- names must be RFC 9110 tokens
    for _, bad in ipairs({ "a b", "a:b", "a(b", "", "x\0y", "caf\xc3\xa9", "a\tb" }) do
      assert.has_error(function() run(function() return http.request({ url = srv:url("/"), headers = { [bad] = "v" } }) end) end,
        nil, ("header name %q"):format(bad))
    end
    assert.has_error(function() run(function() return http.request({ url = srv:url("/"), method = "get it" }) end) end)
    assert.has_error(function()
      run(function() return http.request({ url = srv:url("/"), body = "a", body_file = "/etc/hosts" }) end)
    end)
    assert.has_error(function() run(function() return http.request({ url = srv:url("/"), stream = "yes" }) end) end)
    assert.has_error(function() http.request({ url = srv:url("/") }) end,
      "aio_aws: http.request must be called inside a task (use aws.run or aws.spawn)")
  end)

  it("returns nil, err for a body file that cannot be opened", function()
    local res, err = run(function()
      return http.request({ method = "PUT", url = srv:url("/files/x"), body_file = tmp .. "/missing" })
    end)
    assert.is_nil(res)
    assert.are.equal("BodyReadError", err.code)
    assert.matches("missing", err.message)
  end)

  it("verifies TLS: rejects an unknown CA, accepts it given as cafile or capath", function()
    local r1, e1 = run(function() return http.request({ url = srv:tls_url("/echo?i=tls") }) end)
    assert.is_nil(r1)
    assert.are.equal("TLSError", e1.code)
    local r2 = run(function() return http.request({ url = srv:tls_url("/echo?i=tls"), cafile = srv.ca_file }) end)
    assert.are.equal("tls", r2.body)
    local r3 = run(function() return http.request({ url = srv:tls_url("/echo?i=p"), capath = srv.capath }) end)
    assert.are.equal("p", r3.body)
    local r4 = run(function() return http.request({ url = srv:tls_url("/echo?i=v"), verify = false }) end)
    assert.are.equal("v", r4.body)
  end)

  it("uploads 100 MB from a file and downloads it to a file, memory bounded", function()
    local src = tmp .. "/src.bin"
    proc.sh("head -c 104857600 /dev/urandom > " .. proc.quote(src))
    local before = rss_kb()
    local put, get = run(function()
      local put = assert(http.request({ method = "PUT", url = srv:url("/files/big/up.bin"), body_file = src }))
      local get = assert(http.request({ url = srv:url("/files/big/up.bin"), sink_file = tmp .. "/down.bin" }))
      return put, get
    end)
    local grown = rss_kb() - before
    assert.is_true(put.status == 201 or put.status == 204, "PUT status " .. put.status)
    assert.are.equal(200, get.status)
    assert.are.equal(104857600, get.body_size)
    local want = md5sum(src)
    assert.are.equal(want, md5sum(srv.files_dir .. "/big/up.bin"))
    assert.are.equal(want, md5sum(tmp .. "/down.bin"))
    if not SANITIZED then assert.is_true(grown < 40 * 1024, "RSS grew by " .. grown .. " kB") end
  end)

  it("uploads a byte range of a file", function()
    local src = tmp .. "/range.bin"
    local f = assert(io.open(src, "wb"))
    f:write(("0123456789"):rep(1000))
    f:close()
    local res = run(function()
      return http.request({ method = "PUT", url = srv:url("/files/range.bin"), body_file = src,
        body_offset = 5, body_length = 20 })
    end)
    assert.is_true(res.status == 201 or res.status == 204)
    local got = assert(io.open(srv.files_dir .. "/range.bin", "rb")):read("a")
    assert.are.equal("56789012345678901234", got)
  end)

  it("keeps an error body in memory instead of the sink file", function()
    local res = run(function()
      return http.request({ url = srv:url("/status/404"), sink_file = tmp .. "/err.bin" })
    end)
    assert.are.equal(404, res.status)
    assert.matches("status 404", res.body)
    assert.are.equal("", assert(io.open(tmp .. "/err.bin", "rb")):read("a"))
  end)

  it("streams 100 MB with back-pressure: memory stays bounded while the reader stalls", function()
    local before = rss_kb()
    local total, stalled_growth, peak = 0, nil, 0
    run(function()
      local res = assert(http.request({ url = srv:url("/big"), stream = true, stream_buffer = 256 * 1024 }))
      assert.are.equal(200, res.status)
      assert.are.equal(tostring(100 * 1024 * 1024), res.headers["content-length"])
      local first = assert(res.body:read(1000))
      total = #first
      aws.sleep(0.5) -- stall: without back-pressure the whole body would pile up
      stalled_growth = rss_kb() - before
      for chunk in res.body:iter_chunks(1024 * 1024) do
        total = total + #chunk
        peak = math.max(peak, rss_kb() - before)
      end
      res.body:close()
    end)
    assert.are.equal(100 * 1024 * 1024, total)
    if not SANITIZED then
      assert.is_true(stalled_growth < 20 * 1024, "RSS grew by " .. stalled_growth .. " kB while stalled")
      assert.is_true(peak < 60 * 1024, "RSS peak growth " .. peak .. " kB")
    end
  end)

  it("reads a stream as lines and with read_all", function()
    local lines, all = run(function()
      local res = assert(http.request({ url = srv:url("/reqheader"), stream = true, headers = { ["X-Test"] = "L" } }))
      local out = {}
      for line in res.body:iter_lines() do out[#out + 1] = line end
      local res2 = assert(http.request({ url = srv:url("/echo?i=whole"), stream = true }))
      return out, res2.body:read_all()
    end)
    assert.are.equal("method: GET", lines[1])
    assert.are.equal("x-test: L", lines[3])
    assert.are.equal("whole", all)
  end)

  it("closing or dropping an unread stream frees its transfer", function()
    run(function()
      local res = assert(http.request({ url = srv:url("/big"), stream = true }))
      assert.are.equal(1, core.stats().in_flight)
      res.body:close()
      assert.are.equal(0, core.stats().in_flight)
      assert.is_nil(res.body:read(10))
      do
        local _ = assert(http.request({ url = srv:url("/big"), stream = true }))
      end
      -- dropped without close: collecting it must stop the transfer
      collectgarbage()
      collectgarbage()
      assert.are.equal(0, core.stats().in_flight)
      do
        local r <close> = assert(http.request({ url = srv:url("/big"), stream = true })).body
        assert.is_string(r:read(10))
      end
      assert.are.equal(0, core.stats().in_flight)
    end)
  end)

  it("cancelling a task stops its request", function()
    run(function()
      local t = aws.spawn(function() return http.request({ url = srv:url("/slow") }) end)
      aws.sleep(0.1)
      assert.are.equal(1, core.stats().in_flight)
      t:cancel()
      local r, e = t:wait()
      assert.is_nil(r)
      assert.are.equal("Cancelled", e.code)
      assert.are.equal(0, core.stats().in_flight)
    end)
  end)

  it("closing a pool fails its waiting requests with Cancelled", function()
    local r, e = run(function()
      local pool = http.pool()
      local t = aws.spawn(function() return http.request({ url = srv:url("/slow"), pool = pool }) end)
      aws.sleep(0.1)
      pool:close()
      return t:wait()
    end)
    assert.is_nil(r)
    assert.are.equal("Cancelled", e.code)
  end)

  it("uses the proxy from the standard environment variables", function()
    -- example.invalid cannot resolve: only a proxy can answer for it.
    local script = tmp .. "/proxy.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      package.cpath = (os.getenv("AIO_AWS_CPATH") or "") .. ";lua/?.so;" .. package.cpath
      local aws, http = require "aio_aws", require "aio_aws.http"
      local res, err = aws.run(function() return http.request({ url = "http://example.invalid/echo?i=via-proxy" }) end)
      io.write(res and res.body or tostring(err))
    ]])
    f:close()
    local out = proc.sh("http_proxy=" .. proc.quote(srv:url("")) .. " lua5.4 " .. proc.quote(script))
    assert.are.equal("via-proxy", out)
  end)

  it("collectgarbage inside completions of many requests is harmless", function()
    local ok = 0
    run(function()
      local ts = {}
      for i = 1, 300 do
        ts[i] = aws.spawn(function()
          local res = http.request({ url = srv:url("/echo?i=" .. i) })
          collectgarbage()
          if res and res.body == tostring(i) then ok = ok + 1 end
        end)
      end
      aws.gather(table.unpack(ts))
    end)
    assert.are.equal(300, ok)
  end)

  -- feed mode: a body pulled from a Lua source with back-pressure

  -- `n` chunks of `size` bytes, each made distinct by its index; the md5 of
  -- the whole is computed as the chunks are produced
  local function counted_source(n, size, opts)
    local block = ("f"):rep(size - 8)
    local i, h = 0, core.hasher("md5")
    local src = {}
    function src.next()
      if i == n then return nil end
      i = i + 1
      if opts and opts.wait and i % 7 == 0 then aws.sleep(0.001) end -- sources may wait
      local c = ("%08d"):format(i) .. block
      h:update(c)
      src.pulled = (src.pulled or 0) + #c
      return c
    end
    function src.md5() return h:hexdigest() end
    return src
  end

  it("uploads a body_source with a Content-Length, and chunked without one", function()
    local a, b = counted_source(50, 65536, { wait = true }), counted_source(33, 10000)
    run(function()
      local r1 = assert(http.request({ method = "PUT", url = srv:url("/files/feed-len.bin"),
        body_source = a.next, body_length = 50 * 65536 }))
      assert.is_true(r1.status == 201 or r1.status == 204, "PUT status " .. r1.status)
      local r2 = assert(http.request({ method = "PUT", url = srv:url("/files/feed-chunked.bin"),
        body_source = b.next }))
      assert.is_true(r2.status == 201 or r2.status == 204, "PUT status " .. r2.status)
    end)
    assert.are.equal(a.md5(), md5sum(srv.files_dir .. "/feed-len.bin"))
    assert.are.equal(b.md5(), md5sum(srv.files_dir .. "/feed-chunked.bin"))
  end)

  it("feeds 100 MB with memory bounded", function()
    local src = counted_source(100, 1 << 20)
    local before = rss_kb()
    local res = run(function()
      return assert(http.request({ method = "PUT", url = srv:url("/files/feed-big.bin"),
        body_source = src.next, body_length = 100 << 20 }))
    end)
    local grown = rss_kb() - before
    assert.is_true(res.status == 201 or res.status == 204)
    assert.are.equal(src.md5(), md5sum(srv.files_dir .. "/feed-big.bin"))
    if not SANITIZED then assert.is_true(grown < 40 * 1024, "RSS grew by " .. grown .. " kB") end
  end)

  it("pulls no more than feed_buffer ahead of the network (back-pressure)", function()
    local bh = blackhole.start("noaccept")
    finally(function() bh:stop() end)
    local src = counted_source(1000, 16384)
    local _, err = run(function()
      return http.request({ method = "PUT", url = bh:url("/x"), body_source = src.next,
        body_length = 1000 * 16384, feed_buffer = 100000, connect_timeout = 0.5 })
    end)
    assert.are.equal("Timeout", err.code)
    -- the buffer takes chunks while less than feed_buffer bytes wait (so
    -- one may cross it), then the next chunk waits in the task
    assert.is_true(src.pulled <= 100000 + 2 * 16384, "pulled " .. src.pulled)
    assert.is_true(src.pulled >= 100000, "pulled " .. src.pulled)
  end)

  it("a failing, short, long or raising source ends the request cleanly", function()
    run(function()
      local n = 0
      local _, err = http.request({ method = "PUT", url = srv:url("/files/f1"),
        body_source = function() n = n + 1; if n < 3 then return ("a"):rep(1000) end return nil, "disk gone" end })
      assert.are.equal("BodyReadError", err.code)
      assert.matches("disk gone", err.message)
      n = 0
      _, err = http.request({ method = "PUT", url = srv:url("/files/f2"), body_length = 5000,
        body_source = function() n = n + 1; if n < 3 then return ("a"):rep(1000) end end })
      assert.are.equal("BodyReadError", err.code)
      assert.matches("2000 of the declared 5000", err.message)
      _, err = http.request({ method = "PUT", url = srv:url("/files/f3"), body_length = 10,
        body_source = function() return ("a"):rep(1000) end })
      assert.are.equal("BodyReadError", err.code)
      local ok, e = pcall(http.request, { method = "PUT", url = srv:url("/files/f4"),
        body_source = function() error("source bug") end })
      assert.is_false(ok)
      assert.matches("source bug", e)
      ok, e = pcall(http.request, { method = "PUT", url = srv:url("/files/f5"),
        body_source = function() return 42 end })
      assert.is_false(ok)
      assert.matches("must return strings", e)
      assert.are.equal(0, core.stats().in_flight)
    end)
  end)

  it("cancelling a task while it feeds stops its request", function()
    local bh = blackhole.start("noaccept")
    finally(function() bh:stop() end)
    run(function()
      local src = counted_source(1000, 16384)
      local t = aws.spawn(function()
        return http.request({ method = "PUT", url = bh:url("/x"), body_source = src.next, feed_buffer = 50000 })
      end)
      aws.sleep(0.1)
      assert.are.equal(1, core.stats().in_flight)
      t:cancel()
      local r, e = t:wait()
      assert.is_nil(r)
      assert.are.equal("Cancelled", e.code)
      assert.are.equal(0, core.stats().in_flight)
    end)
  end)

  it("raises on body_source misuse", function()
    run(function()
      assert.has_error(function() http.request({ method = "PUT", url = srv:url("/x"), body_source = "abc" }) end)
      assert.has_error(function()
        http.request({ method = "PUT", url = srv:url("/x"), body = "a", body_source = function() end })
      end)
      assert.has_error(function()
        http.request({ method = "PUT", url = srv:url("/x"), body_source = function() end, feed_buffer = -1 })
      end)
    end)
  end)
end)
