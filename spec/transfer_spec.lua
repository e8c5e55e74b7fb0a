-- upload_file / download_file and large streamed bodies against s3rver,
-- with memory measured by the kernel (RSS) in the plain run; failures
-- against the fault server leave no partial file behind.
local aws = require "aio_aws"
local core = require "aio_aws.core"
local session_mod = require "aio_aws.session"
local proc = require "support.proc"
local run = require "support.run"

-- Under ASan or valgrind freed memory is held back (quarantine): RSS says
-- nothing there, so the bounds are checked in the plain run only.
local SANITIZED = os.getenv("AIO_AWS_SANITIZED") == "1"

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function md5sum(path)
  return (proc.sh("md5sum " .. proc.quote(path))):match("^(%x+)")
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function random_bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(0, 255)) end
  return table.concat(t)
end

local function files_in(dir)
  local out = {}
  for name in proc.sh("ls -A " .. proc.quote(dir)):gmatch("[^\n]+") do out[#out + 1] = name end
  table.sort(out)
  return out
end

local function s3_client(endpoint, creds)
  local session = assert(session_mod.new({ region = "us-east-1", config = { env = {} },
    credentials = creds or { access_key = "S3RVER", secret_key = "S3RVER" } }))
  return assert(session:client("s3", { endpoint_url = endpoint, s3 = { addressing_style = "path" } }))
end

describe("transfers against s3rver", function()
  local srv, s3, dir
  setup(function()
    srv = require("support.s3rver").start({ buckets = { "files" } })
    s3 = s3_client(srv.endpoint)
    dir = proc.tmpdir("transfer")
  end)
  teardown(function()
    if s3 then s3:close() end
    if srv then srv:stop() end
    if dir then proc.rmdir(dir) end
  end)

  it("upload_file and download_file round-trip a file with extra parameters", function()
    local data = random_bytes(300000)
    write_file(dir .. "/src.bin", data)
    run(function()
      local up = assert(s3:upload_file(dir .. "/src.bin", "files", "rt.bin", { ContentType = "application/x-test" }))
      assert.are.equal('"' .. core.md5_hex(data) .. '"', up.ETag)
      local down = assert(s3:download_file("files", "rt.bin", dir .. "/dst.bin"))
      assert.is_nil(down.Body)
      assert.are.equal("application/x-test", down.ContentType)
      assert.are.equal(300000, down.ContentLength)
    end)
    assert.are.equal(data, read_file(dir .. "/dst.bin"))
    assert.are.same({ "dst.bin", "src.bin" }, files_in(dir))
  end)

  it("uploads a large file in parts, a few at a time, and small ones with PutObject", function()
    local data = random_bytes(1 << 20):rep(21)
    write_file(dir .. "/parts.bin", data)
    local calls, active, max_active = {}, 0, 0
    local h1 = s3:on("before_send", function(_, ctx)
      calls[ctx.operation] = (calls[ctx.operation] or 0) + 1
      if ctx.operation == "UploadPart" then
        active = active + 1
        max_active = math.max(max_active, active)
      end
    end)
    local h2 = s3:on("after_call", function() active = active - 1 end, "UploadPart")
    finally(function() h1:remove() h2:remove() os.remove(dir .. "/parts.bin") end)
    run(function()
      assert(s3:upload_file(dir .. "/parts.bin", "files", "parts.bin", { ContentType = "application/x-parts" },
        { multipart_threshold = 8 << 20, multipart_chunksize = 5 << 20, max_concurrency = 3 }))
      local got = assert(s3:get_object({ Bucket = "files", Key = "parts.bin" }))
      assert.are.equal("application/x-parts", got.ContentType)
      assert.are.equal(core.md5_hex(data), core.md5_hex(got.Body:read_all()))
      -- below the threshold: one PutObject
      assert(s3:upload_file(dir .. "/parts.bin", "files", "whole.bin", nil, { multipart_threshold = 32 << 20 }))
    end)
    assert.are.same({ CreateMultipartUpload = 1, UploadPart = 5, CompleteMultipartUpload = 1, GetObject = 1,
      PutObject = 1 }, calls)
    assert.is_true(max_active > 1 and max_active <= 3, "parts in flight at once: " .. max_active)
  end)

  it("a file handle body is sent from its current position", function()
    local data = random_bytes(100000)
    write_file(dir .. "/h.bin", data)
    run(function()
      local f = assert(io.open(dir .. "/h.bin", "rb"))
      f:seek("set", 1000)
      local up = assert(s3:put_object({ Bucket = "files", Key = "h.bin", Body = f }))
      f:close()
      assert.are.equal('"' .. core.md5_hex(data:sub(1001)) .. '"', up.ETag)
      local got = assert(s3:get_object({ Bucket = "files", Key = "h.bin" }))
      assert.are.equal(data:sub(1001), got.Body:read_all())
    end)
  end)

  it("a missing key: the error, the target untouched, no temp file", function()
    write_file(dir .. "/keep.txt", "precious")
    run(function()
      local out, err = s3:download_file("files", "no-such-key", dir .. "/keep.txt")
      assert.is_nil(out)
      assert.are.equal("NoSuchKey", err.code)
    end)
    assert.are.equal("precious", read_file(dir .. "/keep.txt"))
    for _, name in ipairs(files_in(dir)) do assert.is_nil(name:find("%.part$"), name) end
  end)

  it("an unwritable target is BodyWriteError and frees the connection", function()
    run(function()
      assert(s3:put_object({ Bucket = "files", Key = "w.bin", Body = ("w"):rep(3 << 20) }))
      local out, err = s3:download_file("files", "w.bin", dir .. "/no/such/dir/w.bin")
      assert.is_nil(out)
      assert.are.equal("BodyWriteError", err.code)
      assert.are.equal(0, core.stats().in_flight)
      local up, uerr = s3:upload_file(dir .. "/missing.bin", "files", "m")
      assert.is_nil(up)
      assert.are.equal("BodyReadError", uerr.code)
    end)
  end)

  it("raises on misuse", function()
    assert.has_error(function() s3:upload_file(nil, "files", "k") end)
    assert.has_error(function() s3:upload_file("/x", "files", "") end)
    assert.has_error(function() s3:upload_file("/x", "files", "k", "extra") end)
    assert.has_error(function() s3:upload_file("/x", "files", "k", { Body = "x" }) end)
    assert.has_error(function() s3:download_file("files", 5, "/x") end)
    assert.has_error(function() s3:upload_file("/x", "files", "k", nil, { max_concurrency = 0 }) end)
    assert.has_error(function() s3:upload_file("/x", "files", "k", nil, { part_size = 5 }) end)
    assert.has_error(function() s3:upload_file("/x", "files", "k", nil, 5) end)
    assert.has_error(function() s3.download_file("files", "k", "/x") end)
  end)

  it("200 MB up (path and file handle) and down (download_file, streamed) with bounded memory", function()
    local big = dir .. "/big.bin"
    do -- 200 MiB: a random MiB, each copy made distinct by its index
      local block = random_bytes(1 << 20)
      local f = assert(io.open(big, "wb"))
      for i = 1, 200 do f:write(("%08d"):format(i), block:sub(9)) end
      f:close()
    end
    local want = md5sum(big)
    -- The streamed chunks become garbage strings at once; with Lua's
    -- default pause (200 %) they may pile up to the size of the live heap,
    -- which in `make test` (every spec in one Lua state) is large. A pause
    -- of 100 % keeps the measure about the transfer's own buffers.
    local old_pause = collectgarbage("setpause", 100)
    finally(function() collectgarbage("setpause", old_pause) end)
    collectgarbage()
    local before = rss_kb()
    local peak = 0
    local function sample() peak = math.max(peak, rss_kb() - before) end
    run(function()
      local watcher = aws.spawn(function()
        while true do
          sample()
          aws.sleep(0.05)
        end
      end)
      local up = assert(s3:upload_file(big, "files", "big"))
      assert.are.equal('"' .. want .. '"', up.ETag)
      local f = assert(io.open(big, "rb"))
      local up2 = assert(s3:put_object({ Bucket = "files", Key = "big2", Body = f }))
      f:close()
      assert.are.equal('"' .. want .. '"', up2.ETag)
      assert(s3:download_file("files", "big", dir .. "/big.down"))
      local got = assert(s3:get_object({ Bucket = "files", Key = "big2" }))
      local h, n = core.hasher("md5"), 0
      for chunk in got.Body:iter_chunks(1 << 20) do
        h:update(chunk)
        n = n + #chunk
      end
      assert.are.equal(200 << 20, n)
      assert.are.equal(want, h:hexdigest())
      watcher:cancel()
    end)
    sample()
    assert.are.equal(want, md5sum(dir .. "/big.down"))
    if not SANITIZED then
      assert.is_true(peak < 64 * 1024, "RSS grew by up to " .. peak .. " kB")
    end
    os.remove(big)
    os.remove(dir .. "/big.down")
  end)
end)

describe("download_file against a failing server", function()
  local srv, s3, dir
  setup(function()
    srv = require("support.fault_server").start()
    s3 = s3_client(srv:url(""), { access_key = "AK", secret_key = "SK" })
    dir = proc.tmpdir("transfer-fault")
  end)
  teardown(function()
    if s3 then s3:close() end
    if srv then srv:stop() end
    if dir then proc.rmdir(dir) end
  end)

  it("a cut transfer is IncompleteRead; the target stays as it was; no temp file", function()
    write_file(dir .. "/target", "old")
    -- the resumed requests get the default answer (200, no Content-Range): refused
    srv:script({ { action = "truncate", body = ("t"):rep(50000), length = 90000, headers = { etag = '"v1"' } } })
    run(function()
      local out, err = s3:download_file("b", "k", dir .. "/target")
      assert.is_nil(out)
      assert.are.equal("IncompleteRead", err.code)
      assert.are.equal(90000, err.expected)
      assert.are.equal(50000, err.actual)
    end)
    assert.are.equal("old", read_file(dir .. "/target"))
    assert.are.same({ "target" }, files_in(dir))
  end)

  it("a file-handle upload is replayed from its position on a retry; a reader without seek is not", function()
    write_file(dir .. "/replay.bin", ("r"):rep(70000))
    srv:reset()
    srv:script({ { action = "reset" }, { status = 200, body = "" }, { action = "reset" } })
    run(function()
      local f = assert(io.open(dir .. "/replay.bin", "rb"))
      f:seek("set", 100)
      local out = assert(s3:put_object({ Bucket = "b", Key = "k", Body = f }))
      f:close()
      assert.are.equal(1, out.ResponseMetadata.RetryAttempts)
      local chunks = { ("x"):rep(1000), ("y"):rep(1000) }
      local reader = { read = function() return table.remove(chunks, 1) end }
      local _, err = s3:put_object({ Bucket = "b", Key = "k2", Body = reader })
      assert.are.equal("BodyReadError", err.code)
      assert.matches("cannot be rewound", err.message)
    end)
    os.remove(dir .. "/replay.bin")
    local reqs = srv:requests()
    assert.are.equal(3, #reqs)
    assert.are.equal(69900, reqs[1].body_length)
    assert.are.equal(69900, reqs[2].body_length)
    assert.are.equal("69900", reqs[2].headers["content-length"])
    assert.are.equal("chunked", reqs[3].headers["transfer-encoding"])
  end)

  it("a cut transfer resumes with Range and If-Match where it stopped", function()
    local data = {}
    for i = 1, 9000 do data[i] = ("%09d\n"):format(i) end -- text: the fault server takes JSON strings
    data = table.concat(data)
    srv:reset()
    srv:script({
      { action = "truncate", body = data:sub(1, 50000), length = 90000, headers = { etag = '"v1"' } },
      { status = 206, body = data:sub(50001), headers = { etag = '"v1"', ["content-range"] = "bytes 50000-89999/90000" } },
    })
    run(function() assert(s3:download_file("b", "k", dir .. "/resumed")) end)
    finally(function() os.remove(dir .. "/resumed") end)
    assert.are.equal(data, read_file(dir .. "/resumed"))
    local reqs = srv:requests()
    assert.are.equal(2, #reqs)
    assert.are.equal("bytes=50000-", reqs[2].headers.range)
    assert.are.equal('"v1"', reqs[2].headers["if-match"])
  end)

  it("a failed part aborts the multipart upload and returns that part's error", function()
    local p = dir .. "/mp.bin"
    write_file(p, ("m"):rep(12 << 20))
    finally(function() os.remove(p) end)
    srv:reset()
    srv:script({
      { status = 200, body = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
        .. "<UploadId>UP1</UploadId></InitiateMultipartUploadResult>" },
      { status = 400, body = "<Error><Code>InvalidPart</Code><Message>bad part</Message></Error>" },
    }, { status = 200, body = "", headers = { etag = '"e"' } })
    run(function()
      local out, err = s3:upload_file(p, "b", "k", nil,
        { multipart_threshold = 5 << 20, multipart_chunksize = 5 << 20, max_concurrency = 1 })
      assert.is_nil(out)
      assert.are.equal("InvalidPart", err.code)
    end)
    local reqs = srv:requests()
    assert.are.equal(3, #reqs)
    assert.are.equal("POST", reqs[1].method)
    assert.matches("uploads", reqs[1].query)
    assert.are.equal("PUT", reqs[2].method)
    assert.matches("partNumber=1", reqs[2].query)
    assert.are.equal(5 << 20, reqs[2].body_length)
    assert.are.equal("DELETE", reqs[3].method)
    assert.matches("uploadId=UP1", reqs[3].query)
  end)

  it("a cancelled download removes its temp file", function()
    srv:script({ { action = "slow_body", body = ("s"):rep(1000), chunk = 10, interval = 0.05 } })
    run(function()
      local t = aws.spawn(function() return s3:download_file("b", "k", dir .. "/slow") end)
      aws.sleep(0.3)
      t:cancel()
      local _, err = t:wait()
      assert.are.equal("Cancelled", err.code)
    end)
    assert.are.same({ "target" }, files_in(dir))
  end)
end)
