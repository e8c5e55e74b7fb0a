-- Streaming bodies (aio_aws.body): the Body interface over buffered and
-- live HTTP streams (the fault server), Content-Length checks
-- (IncompleteRead), connections never held by a dropped body (runtime
-- stats and a one-connection pool), and the request-side sources.
local aws = require "aio_aws"
local body = require "aio_aws.body"
local core = require "aio_aws.core"
local checksum = require "aio_aws.checksum"
local http = require "aio_aws.http"
local session_mod = require "aio_aws.session"
local proc = require "support.proc"
local run = require "support.run"

local function all_lines(b, keepends, chunk)
  local out = {}
  for l in b:iter_lines(keepends, chunk) do out[#out + 1] = l end
  return out
end

describe("Body over a buffered payload", function()
  it("reads in pieces, then nil at the end; tell counts", function()
    local b = body.from_string("hello world")
    assert.are.equal("hello", b:read(5))
    assert.are.equal(5, b:tell())
    assert.are.equal(" world", b:read(100))
    assert.is_nil(b:read(1))
    assert.is_nil(b:read(1))
    assert.are.equal("", b:read_all())
    assert.are.equal(11, b:tell())
  end)

  it("read() and read_all() return the rest", function()
    local b = body.from_string("abcdef")
    assert.are.equal("ab", b:read(2))
    assert.are.equal("cdef", b:read())
    assert.are.equal("", b:read_all())
  end)

  it("iter_chunks yields fixed-size chunks, the last shorter", function()
    local b = body.from_string(("x"):rep(10))
    local sizes = {}
    for c in b:iter_chunks(4) do sizes[#sizes + 1] = #c end
    assert.are.same({ 4, 4, 2 }, sizes)
  end)

  it("iter_lines splits at \\n and \\r\\n, keeps a last line without an end", function()
    local text = "one\ntwo\r\n\r\nfour\nlast"
    assert.are.same({ "one", "two", "", "four", "last" }, all_lines(body.from_string(text)))
    -- every chunk size: a \r\n split between two reads is still one line end
    for size = 1, 7 do
      assert.are.same({ "one", "two", "", "four", "last" }, all_lines(body.from_string(text), false, size))
    end
    assert.are.same({ "one\n", "two\r\n", "\r\n", "four\n", "last" }, all_lines(body.from_string(text), true, 2))
    assert.are.same({ "a" }, all_lines(body.from_string("a\n")))
    assert.are.same({ "a" }, all_lines(body.from_string("a\r\n")))
    assert.are.same({}, all_lines(body.from_string("")))
    assert.are.same({ "", "" }, all_lines(body.from_string("\n\n")))
  end)

  it("checks Content-Length at the end: IncompleteRead with both counts, sticky", function()
    local b = body.from_string("12345", { content_length = "8" })
    assert.are.equal("12345", b:read(5))
    local s, err = b:read(5)
    assert.is_nil(s)
    assert.are.equal("IncompleteRead", err.code)
    assert.are.equal(8, err.expected)
    assert.are.equal(5, err.actual)
    assert.matches("5 read, but total bytes expected is 8", err.message)
    local s2, err2 = b:read_all()
    assert.is_nil(s2)
    assert.are.equal(err, err2)
    local ok, e = pcall(function() for _ in body.from_string("1", { content_length = 2 }):iter_chunks(1) do end end)
    assert.is_false(ok)
    assert.are.equal("IncompleteRead", e.code)
    assert.are.equal("12", body.from_string("12", { content_length = 2 }):read_all())
  end)

  it("validates a checksum at the end", function()
    local good = body.from_string("data", { checksum = { "sha256", checksum.compute("sha256", "data") } })
    assert.are.equal("data", good:read_all())
    local bad = body.from_string("data", { checksum = { "crc32", checksum.compute("crc32", "date") } })
    assert.are.equal("da", bad:read(2))
    assert.are.equal("ta", bad:read(2))
    local s, err = bad:read(2)
    assert.is_nil(s)
    assert.are.equal("FlexibleChecksumError", err.code)
  end)

  it("close makes later reads fail; works with <close>", function()
    local b = body.from_string("abc")
    do
      local c <close> = b
      assert.are.equal("a", c:read(1))
    end
    local s, err = b:read(1)
    assert.is_nil(s)
    assert.are.equal("Closed", err.code)
    b:close() -- idempotent
    assert.matches("aio_aws.Body", tostring(b))
  end)

  it("raises on misuse", function()
    assert.has_error(function() body.new(nil) end)
    assert.has_error(function() body.new({}) end)
    assert.has_error(function() body.new({ read = function() end }, 5) end)
    assert.has_error(function() body.from_string(5) end)
    local b = body.from_string("x")
    assert.has_error(function() b:read(0) end)
    assert.has_error(function() b:read(1.5) end)
    assert.has_error(function() b:read("2") end)
    assert.has_error(function() b:iter_chunks(0) end)
    assert.has_error(function() b:iter_lines(false, -1) end)
    assert.is_false(body.is("x"))
    assert.is_true(body.is(b))
  end)
end)

describe("Body over live HTTP streams", function()
  local srv
  setup(function() srv = require("support.fault_server").start() end)
  teardown(function()
    if srv then srv:stop() end
    -- the support modules' control sockets close when collected: here, not in a later spec's fd count
    collectgarbage()
    collectgarbage()
  end)
  before_each(function() srv:reset() end)

  local function get(path, opts)
    local res = assert(http.request({ url = srv:url(path), stream = true, pool = opts and opts.pool }))
    return body.new(res.body, { content_length = res.headers["content-length"] }), res
  end

  it("reads a body arriving in small pieces, lines across network chunks", function()
    local text = {}
    for i = 1, 50 do text[i] = ("line %d%s"):format(i, i % 2 == 0 and "\r\n" or "\n") end
    text = table.concat(text) .. "tail"
    srv:script({ { action = "slow_body", body = text, chunk = 7, interval = 0.001 } })
    run(function()
      local b = get("/lines")
      local lines = all_lines(b)
      assert.are.equal(51, #lines)
      assert.are.equal("line 1", lines[1])
      assert.are.equal("line 50", lines[50])
      assert.are.equal("tail", lines[51])
      assert.are.equal(#text, b:tell())
    end)
  end)

  it("a connection cut before Content-Length is IncompleteRead", function()
    srv:script({ { action = "truncate", body = "hello", length = 100 },
                 { action = "truncate", body = "hello", length = 100 } })
    run(function()
      local b = get("/t1")
      local s, err = b:read_all()
      assert.is_nil(s)
      assert.are.equal("IncompleteRead", err.code)
      assert.are.equal(100, err.expected)
      assert.are.equal(5, err.actual)
      b = get("/t2")
      local got = {}
      repeat
        s, err = b:read(2)
        got[#got + 1] = s
      until not s
      assert.are.equal("hello", table.concat(got))
      assert.are.equal("IncompleteRead", err.code)
    end)
  end)

  it("closing an unread body ends its transfer", function()
    srv:script({ { body = ("z"):rep(4 << 20) } })
    run(function()
      local b = get("/big")
      assert.are.equal(1, core.stats().in_flight)
      assert.are.equal(("z"):rep(10), b:read(10))
      b:close()
      assert.are.equal(0, core.stats().in_flight)
    end)
  end)

  it("a dropped body is closed when collected: a one-connection pool keeps working", function()
    local big = ("q"):rep(3 << 20)
    srv:script({ { body = big, times = 6 } })
    local pool = http.pool({ max_total = 1 })
    run(function()
      for _ = 1, 5 do
        do
          local _ = get("/drop", { pool = pool }) -- never read, never closed
          assert.are.equal(1, pool:stats().in_flight)
        end
        collectgarbage()
        collectgarbage()
        assert.are.equal(0, pool:stats().in_flight)
        assert.are.equal(0, core.stats().in_flight)
      end
      -- with a leak the sixth request would wait forever for the connection
      local b = aws.timeout(20, get, "/last", { pool = pool })
      assert.are.equal(#big, #assert(b:read_all()))
    end)
    pool:close()
    assert.are.equal(6, #srv:requests())
  end)

  it("an S3 GetObject Body is a Body; dropped unread, it frees the client's only connection", function()
    local session = assert(session_mod.new({ region = "us-east-1",
      credentials = { access_key = "AK", secret_key = "SK" }, config = { env = {} } }))
    local s3 = assert(session:client("s3", { endpoint_url = srv:url(""), max_pool_connections = 1,
      s3 = { addressing_style = "path" } }))
    finally(function() s3:close() end)
    srv:script({ { body = ("b"):rep(3 << 20), times = 4 } })
    run(function()
      for _ = 1, 3 do
        local out = assert(s3:get_object({ Bucket = "b", Key = "k" }))
        assert.is_true(body.is(out.Body))
        assert.are.equal("bb", out.Body:read(2))
        out = nil -- luacheck: ignore
        collectgarbage()
        collectgarbage()
        assert.are.equal(0, core.stats().in_flight)
      end
      local out = aws.timeout(20, s3.get_object, s3, { Bucket = "b", Key = "k" })
      local b <close> = out.Body
      assert.are.equal(3 << 20, #assert(b:read_all()))
      assert.are.equal(3 << 20, out.ContentLength)
    end)
  end)
end)

describe("request body sources", function()
  local dir
  setup(function()
    dir = proc.tmpdir("body-src")
    local f = assert(io.open(dir .. "/f", "wb"))
    f:write("0123456789")
    f:close()
  end)
  teardown(function() if dir then proc.rmdir(dir) end end)

  local function drain(src, n)
    local read, close = body.open(src)
    assert.is_function(read, close)
    local parts = {}
    while true do
      local s = read(n or 3)
      if not s or s == "" then break end
      parts[#parts + 1] = s
    end
    close()
    return table.concat(parts)
  end

  it("a string", function()
    local src = body.source("abc")
    assert.are.equal("string", src.kind)
    assert.are.equal(3, src.length)
    assert.are.equal("abc", drain(src))
  end)

  it("{file = path [, offset] [, length]}, re-readable", function()
    local src = assert(body.source({ file = dir .. "/f", offset = 2, length = 5 }))
    assert.are.equal("path", src.kind)
    assert.are.equal(5, src.length)
    assert.are.equal("23456", drain(src))
    assert.are.equal("23456", drain(src, 1))
    assert.are.equal(10, assert(body.source({ file = dir .. "/f" })).length)
  end)

  it("an open file, from its current position, rewound for every attempt", function()
    local f = assert(io.open(dir .. "/f", "rb"))
    finally(function() f:close() end)
    assert.are.equal("012", f:read(3))
    local src = assert(body.source(f))
    assert.are.equal("handle", src.kind)
    assert.are.equal(7, src.length)
    assert.are.equal("3456789", drain(src))
    assert.are.equal("3456789", drain(src, 2))
  end)

  it("a reader without seek: length unknown, read once", function()
    local chunks = { "ab", "cd" }
    local r = { read = function() return table.remove(chunks, 1) end }
    local src = assert(body.source(r))
    assert.are.equal("reader", src.kind)
    assert.is_nil(src.length)
    assert.are.equal("abcd", drain(src))
    local read, err = body.open(src)
    assert.is_nil(read)
    assert.are.equal("BodyReadError", err.code)
  end)

  it("missing files and bad ranges are BodyReadError", function()
    local src, err = body.source({ file = dir .. "/missing" })
    assert.is_nil(src)
    assert.are.equal("BodyReadError", err.code)
    src, err = body.source({ file = dir .. "/f", offset = 11 })
    assert.is_nil(src)
    assert.are.equal("BodyReadError", err.code)
    src, err = body.source({ file = dir .. "/f", offset = 5, length = 6 })
    assert.is_nil(src)
    assert.are.equal("BodyReadError", err.code)
  end)

  it("raises on misuse", function()
    assert.has_error(function() body.source(42) end)
    assert.has_error(function() body.source({}) end)
    assert.has_error(function() body.source({ file = dir .. "/f", offset = -1 }) end)
    assert.has_error(function() body.source({ file = dir .. "/f", length = 1.5 }) end)
    local f = assert(io.open(dir .. "/f", "rb"))
    f:close()
    assert.has_error(function() body.source(f) end)
  end)
end)
