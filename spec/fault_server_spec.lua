-- luacheck: std +busted
-- The fault server (spec/support/fault_server.py) does what it promises:
-- every action is observed from the outside, with the curl command line tool
-- (its exit code and what it received) and with aio_aws.http inside aws.run
-- (the error code the transport reports), and the control API's record of
-- requests is checked against what was sent.
local aws = require "aio_aws"
local http = require "aio_aws.http"
local proc = require "support.proc"
local fault = require "support.fault_server"

local q = proc.quote

local srv, work

-- curl from the shell: exit code, body (stdout), stderr, and the -w summary
-- ("status seconds bytes").
local function curl(args)
  local body, errf = work .. "/body", work .. "/err"
  -- no sanitizer preload for curl (make check-asan), and never an endless wait
  local f = assert(io.popen(("env -u LD_PRELOAD curl -sS --max-time 60 -o %s -w '%%{http_code} %%{time_total} %%{size_download}' %s 2>%s")
    :format(q(body), args, q(errf))))
  local summary = f:read("a")
  local _, _, code = f:close()
  local status, secs, size = summary:match("^(%d+) ([%d%.]+) (%d+)")
  return {
    code = code, status = tonumber(status), seconds = tonumber(secs), size = tonumber(size),
    body = proc.read_file(body) or "", stderr = proc.read_file(errf) or "",
  }
end

-- aws.run, but a raise inside fn fails the spec.
local run = require "support.run"

-- One request on a connection of its own: libcurl resends a request once
-- when a *reused* connection dies without an answer, which would consume
-- the next step too.
local function get(path, opts)
  return run(function()
    local pool <close> = http.pool{ max_total = 1 }
    local o = { url = srv:url(path), timeout = 10, pool = pool }
    for k, v in pairs(opts or {}) do o[k] = v end
    local res, err = http.request(o)
    if not res then return false, err end
    return res
  end)
end

describe("support.fault_server", function()
  setup(function()
    srv = fault.start()
    work = proc.tmpdir("fault")
  end)
  teardown(function()
    if srv then srv:stop() end
    if work then proc.rmdir(work) end
  end)
  before_each(function() srv:reset() end)

  describe("control API", function()
    it("records every request, consumes steps in order, then answers the default", function()
      assert.equal(3, srv:script{ { status = 503, body = "busy", times = 2 }, { status = 201 } })
      local a = curl("-X PUT --data-binary 'hello' -H 'X-Test: one' " .. q(srv:url("/a/b?x=1&y=2")))
      local b = curl(q(srv:url("/c")))
      local c = curl("-X POST --data-binary '' " .. q(srv:url("/d")))
      local d = curl("-I " .. q(srv:url("/e")))
      assert.same({ 503, 503, 201, 200 }, { a.status, b.status, c.status, d.status })
      assert.equal("busy", a.body)
      local reqs = srv:requests()
      assert.equal(4, #reqs)
      assert.same({ "PUT", "/a/b", "x=1&y=2", 5, "one" },
        { reqs[1].method, reqs[1].path, reqs[1].query, reqs[1].body_length, reqs[1].headers["x-test"] })
      assert.same({ "GET", "POST", "HEAD" }, { reqs[2].method, reqs[3].method, reqs[4].method })
      assert.equal(reqs[1].step, reqs[2].step) -- one step used twice
      assert.not_equal(reqs[1].step, reqs[3].step)
      assert.is_nil(reqs[4].step)                -- the default answered
      assert.is_true(reqs[1].time <= reqs[4].time)
      assert.is_number(reqs[1].peer_port)
    end)

    it("control paths are not recorded and take no step; reset forgets everything", function()
      srv:script{ { status = 500 } }
      srv:requests()
      assert.equal(0, #srv:requests())
      srv:reset()
      assert.equal(200, curl(q(srv:url("/x"))).status) -- the 500 step is gone
      assert.equal(1, #srv:requests())
      srv:reset()
      assert.equal(0, #srv:requests())
    end)

    it("a default response replaces the empty 200", function()
      srv:script({}, { status = 404, headers = { ["x-amzn-errortype"] = "NotFound" }, body = "{}" })
      local r = curl("-D " .. q(work .. "/headers") .. " " .. q(srv:url("/nothing")))
      assert.equal(404, r.status)
      assert.matches("x%-amzn%-errortype: NotFound", proc.read_file(work .. "/headers"))
      assert.equal("{}", r.body)
    end)

    it("bad scripts are refused", function()
      assert.has_error(function() srv:script{ { action = "explode" } } end)
      assert.has_error(function() srv:script{ { times = 0 } } end)
      assert.has_error(function() srv:script("steps") end)
    end)

    it("keep-alive: requests on one connection share the client port", function()
      local url = q(srv:url("/k"))
      assert.equal(0, curl(url .. " " .. url).code)
      local reqs = srv:requests()
      assert.equal(2, #reqs)
      assert.equal(reqs[1].peer_port, reqs[2].peer_port)
    end)

    it("one slow answer does not hold up another connection", function()
      srv:script{ { action = "delay", seconds = 3, status = 202 } }
      local bg = proc.start{ argv = { "curl", "-sS", "-o", "/dev/null", srv:url("/slow") } }
      finally(function() bg:stop() end)
      -- wait until the server holds the slow request, then ask again
      assert.is_truthy(proc.poll(function() return #srv:requests() == 1 end, 10))
      local r = curl(q(srv:url("/fast")))
      assert.equal(200, r.status)
      assert.is_true(r.seconds < 2, "the second request waited " .. r.seconds .. " s")
      assert.is_true(bg:alive()) -- the slow one is still waiting for its answer
    end)
  end)

  describe("actions seen by curl", function()
    it("status, headers and body", function()
      srv:script{ { status = 418, headers = { ["x-amz-request-id"] = "req-1" }, body = "teapot" } }
      local r = curl("-D " .. q(work .. "/headers") .. " " .. q(srv:url("/tea")))
      assert.same({ 0, 418, "teapot" }, { r.code, r.status, r.body })
      assert.matches("x%-amz%-request%-id: req%-1", proc.read_file(work .. "/headers"))
    end)

    it("reset: the connection is reset (curl 56)", function()
      srv:script{ { action = "reset" } }
      local r = curl(q(srv:url("/rst")))
      assert.equal(56, r.code)
      assert.matches("reset", r.stderr)
      assert.equal(1, #srv:requests()) -- the request did arrive
    end)

    it("close: no answer at all (curl 52, empty reply)", function()
      srv:script{ { action = "close" } }
      local r = curl(q(srv:url("/close")))
      assert.equal(52, r.code)
      assert.matches("Empty reply", r.stderr)
    end)

    it("delay: the answer comes after the delay; a shorter client timeout gives up", function()
      srv:script{ { action = "delay", seconds = 0.6, status = 204 }, { action = "delay", seconds = 2 } }
      local r = curl(q(srv:url("/wait")))
      assert.same({ 0, 204 }, { r.code, r.status })
      assert.is_true(r.seconds >= 0.6, "answered after " .. r.seconds .. " s")
      local t = curl("--max-time 0.5 " .. q(srv:url("/wait")))
      assert.equal(28, t.code) -- operation timed out
    end)

    it("truncate: fewer body bytes than Content-Length, then close (curl 18)", function()
      srv:script{ { action = "truncate", body = "0123456789", length = 25 } }
      local r = curl("-D " .. q(work .. "/headers") .. " " .. q(srv:url("/short")))
      assert.equal(18, r.code)
      assert.equal("0123456789", r.body)
      assert.matches("[Cc]ontent%-[Ll]ength: 25", proc.read_file(work .. "/headers"))
      assert.matches("15 bytes remaining", r.stderr)
    end)

    it("slow_body: the whole body, a chunk per interval", function()
      srv:script{ { action = "slow_body", body = "abcdefgh", chunk = 2, interval = 0.2 } }
      local r = curl(q(srv:url("/drip")))
      assert.same({ 0, 200, "abcdefgh" }, { r.code, r.status, r.body })
      assert.is_true(r.seconds >= 0.6, "4 chunks 0.2 s apart took " .. r.seconds .. " s")
    end)
  end)

  describe("actions seen by aio_aws.http", function()
    it("an error status with its body", function()
      srv:script{ { status = 503, headers = { ["content-type"] = "application/json" }, body = '{"__type":"Busy"}' } }
      local res = get("/svc")
      assert.same({ 503, '{"__type":"Busy"}', "application/json" }, { res.status, res.body, res.headers["content-type"] })
    end)

    it("reset, close and truncate are connection errors", function()
      srv:script{ { action = "reset" }, { action = "close" }, { action = "truncate", body = "abc" } }
      for _, path in ipairs{ "/rst", "/close", "/short" } do
        local ok, err = get(path)
        assert.is_false(ok, path)
        assert.equal("ConnectionError", err.code, path .. ": " .. tostring(err))
      end
      local reqs = srv:requests()
      assert.equal(3, #reqs) -- one request each, no resend
      assert.same({ "/rst", "/close", "/short" }, { reqs[1].path, reqs[2].path, reqs[3].path })
    end)

    it("delay and slow_body beyond the timeout are timeouts", function()
      srv:script{ { action = "delay", seconds = 2 }, { action = "slow_body", body = "abcdefgh", chunk = 1, interval = 0.3 } }
      for _, path in ipairs{ "/wait", "/drip" } do
        local ok, err = get(path, { timeout = 0.5 })
        assert.is_false(ok, path)
        assert.equal("Timeout", err.code, path .. ": " .. tostring(err))
      end
    end)

    it("a script answers concurrent requests one step each", function()
      srv:script{ { status = 500, times = 5 } }
      local statuses = run(function()
        local fns = {}
        for i = 1, 10 do
          fns[i] = function() return assert(http.request{ url = srv:url("/c/" .. i), timeout = 10 }).status end
        end
        local results = aws.gather(table.unpack(fns))
        return results
      end)
      local count = {}
      for _, s in ipairs(statuses) do count[s] = (count[s] or 0) + 1 end
      assert.same({ [500] = 5, [200] = 5 }, count)
      assert.equal(10, #srv:requests())
    end)
  end)
end)
