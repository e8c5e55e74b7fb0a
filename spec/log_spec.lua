-- The logger: levels, LOG_LEVEL, UTC timestamps, sinks, redaction, and a
-- signed call logged at DEBUG that shows none of its secrets.
local log = require "aio_aws.log"
local session_mod = require "aio_aws.session"
local proc = require "support.proc"
local run = require "support.run"

local function capture()
  local records = {}
  local old = log.set_sink(function(r) records[#records + 1] = r end)
  finally(function()
    log.set_sink(old)
    log.set_level(nil)
  end)
  return records
end

describe("log", function()
  it("writes records at or above the threshold", function()
    local records = capture()
    log.set_level("INFO")
    local l = log.get("spec.mod")
    l:debug("hidden %d", 1)
    l:info("shown %d", 2)
    l:warning("warn %s", "x")
    l:error("err")
    l:log("ERROR", "via log %s", "fn")
    assert.are.equal(4, #records)
    assert.are.same({ "INFO", "WARNING", "ERROR", "ERROR" },
      { records[1].level, records[2].level, records[3].level, records[4].level })
    assert.are.equal("shown 2", records[1].message)
    assert.are.equal("spec.mod", records[1].module)
    assert.is_true(l:enabled("ERROR"))
    assert.is_false(l:enabled("DEBUG"))
    assert.are.equal("INFO", log.get_level())
    assert.are.equal(l, log.get("spec.mod"))
  end)

  it("stamps lines with the UTC time in ISO 8601", function()
    local records = capture()
    log.set_level("DEBUG")
    local before = os.time()
    log.get("spec.t"):debug("x")
    local after = os.time()
    local r = records[1]
    local y, mo, d, h, mi, s, ms = r.line:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)%.(%d%d%d)Z DEBUG spec%.t: x$")
    assert.is_not_nil(y, r.line)
    assert.is_true(r.time >= before and r.time <= after + 1)
    -- the same instant as os.date("!*t") gives for the record's time (UTC)
    local t = os.date("!*t", math.floor(r.time))
    assert.are.same({ t.year, t.month, t.day, t.hour, t.min, t.sec },
      { tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s) })
    assert.is_true(tonumber(ms) < 1000)
    assert.are.equal("1970-01-01T00:00:01.500Z", log.timestamp(1.5))
  end)

  it("reads LOG_LEVEL (default WARNING) and writes to stderr", function()
    local script = [[local l = require("aio_aws.log").get("m"); l:debug("d"); l:info("i"); l:warning("w"); l:error("e")]]
    local function lines(level)
      local env = level and ("LOG_LEVEL=" .. level .. " ") or "env -u LOG_LEVEL "
      local paths = "package.path='lua/?.lua;lua/?/init.lua;'..package.path; package.cpath='lua/?.so;'..package.cpath"
      local out = proc.sh(("%slua5.4 -e %s -e %s 2>&1 >/dev/null"):format(env, proc.quote(paths), proc.quote(script)))
      local got = {}
      for lv in out:gmatch("Z (%u+) m: ") do got[#got + 1] = lv end
      return got
    end
    assert.are.same({ "WARNING", "ERROR" }, lines(nil))
    assert.are.same({ "DEBUG", "INFO", "WARNING", "ERROR" }, lines("debug"))
    assert.are.same({ "INFO", "WARNING", "ERROR" }, lines("INFO"))
    assert.are.same({ "ERROR" }, lines("ERROR"))
  end)

  it("a failing sink or format does not break the caller", function()
    local old = log.set_sink(function() error("sink broken") end)
    finally(function() log.set_sink(old) log.set_level(nil) end)
    log.set_level("DEBUG")
    assert.has_no_error(function() log.get("spec.s"):debug("%d", "not a number") end)
    log.set_sink(nil)
    local records = capture()
    log.set_level("DEBUG")
    log.get("spec.s"):debug("%d", "nan")
    assert.matches("log format error", records[1].message)
  end)

  it("redacts presigned query secrets and secret headers", function()
    local url = "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20150830%2Fus-east-1%2Fs3%2Faws4_request"
      .. "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Security-Token=TOKEN123"
      .. "&X-Amz-Signature=deadbeef"
    local r = log.redact_url(url)
    assert.is_nil(r:find("AKID", 1, true))
    assert.is_nil(r:find("TOKEN123", 1, true))
    assert.is_nil(r:find("deadbeef", 1, true))
    assert.truthy(r:find("X-Amz-Expires=60", 1, true))
    assert.are.equal("http://h/p", log.redact_url("http://h/p"))
    local h = log.redact_headers({ Authorization = "AWS4-HMAC-SHA256 Credential=AKID/x, Signature=abc",
      ["x-amz-security-token"] = "TOK", ["x-amz-date"] = "D" })
    assert.are.same({ "Authorization: REDACTED", "x-amz-date: D", "x-amz-security-token: REDACTED" }, h)
  end)

  it("raises on misuse", function()
    assert.has_error(function() log.set_level("TRACE") end)
    assert.has_error(function() log.set_level(3) end)
    assert.has_error(function() log.set_sink("stderr") end)
    assert.has_error(function() log.get("") end)
    assert.has_error(function() log.get("m"):log("LOUD", "x") end)
  end)
end)

describe("client logging", function()
  local srv
  setup(function() srv = require("support.fault_server").start() end)
  teardown(function()
    if srv then srv:stop() end
    -- the support modules' control sockets close when collected: here, not in a later spec's fd count
    collectgarbage()
    collectgarbage()
  end)

  it("logs request and response lines at DEBUG, never the secrets", function()
    local SECRET, TOKEN = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY", "FwoGZXIvYXdzEXAMPLETOKEN"
    local session = assert(session_mod.new({ region = "us-east-1", config = { env = {} },
      credentials = { access_key = "AKIDLOGCHECK", secret_key = SECRET, session_token = TOKEN } }))
    local s3 = assert(session:client("s3", { endpoint_url = srv:url(""), s3 = { addressing_style = "path" } }))
    finally(function() s3:close() end)
    local records = capture()
    log.set_level("DEBUG")
    local signature
    local h = s3:on("before_send", function(request)
      signature = request.headers.authorization:match("Signature=(%x+)")
    end)
    srv:script({ { status = 200, body = "", headers = { ["x-amz-request-id"] = "REQ123" } } })
    run(function()
      assert(s3:put_object({ Bucket = "b", Key = "k", Body = "x" }))
    end)
    h:remove()
    assert.is_string(signature)
    local all = {}
    for _, r in ipairs(records) do all[#all + 1] = r.line end
    all = table.concat(all, "\n")
    assert.is_nil(all:find(SECRET, 1, true))
    assert.is_nil(all:find(TOKEN, 1, true))
    assert.is_nil(all:find(signature, 1, true))
    assert.matches("PutObject PUT http://127%.0%.0%.1:%d+/b/k %(attempt 1%)", all)
    assert.matches("%-> 200 in [%d.]+ s %(attempt 1, request id REQ123%)", all)
    assert.matches("aio_aws%.client", all)
  end)
end)
