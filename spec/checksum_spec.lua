-- Flexible checksums: values against Python's zlib/hashlib and an
-- independent CRC32C, aws-chunked framing against botocore's own
-- AwsChunkedWrapper (Debian's botocore 1.29), the algorithm resolution of
-- botocore/httpchecksum.py on the bundled S3 model, the client's request
-- forms (header, trailer) and response validation, live against the fault
-- server and a TLS server that decodes the aws-chunked body itself.
local aws = require "aio_aws"
local checksum = require "aio_aws.checksum"
local model = require "aio_aws.model"
local session_mod = require "aio_aws.session"
local proc = require "support.proc"
local run = require "support.run"

local PY = "/usr/bin/python3"

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function py(script, ...)
  local dir = proc.tmpdir("cksum-py")
  write_file(dir .. "/s.py", script)
  local args = { PY, dir .. "/s.py", ... }
  for i, a in ipairs(args) do args[i] = proc.quote(a) end
  local out, ok = proc.sh(table.concat(args, " ") .. " 2>&1")
  proc.rmdir(dir)
  assert(ok, out)
  return (out:gsub("%s+$", ""))
end

-- CRC32C written here from RFC 3720 B.4 (reflected 0x82F63B78), bit by bit:
-- independent of the C core's slicing tables.
local PY_ORACLE = [==[
import base64, hashlib, sys, zlib
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
assert crc32c(b"123456789") == 0xE3069283
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    vals = [zlib.crc32(data).to_bytes(4, "big"), crc32c(data).to_bytes(4, "big"),
            hashlib.sha1(data).digest(), hashlib.sha256(data).digest()]
    print(" ".join(base64.b64encode(v).decode() for v in vals))
]==]

local function random_bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(0, 255)) end
  return table.concat(t)
end

describe("checksum values", function()
  it("match zlib, hashlib and an independent CRC32C over random data", function()
    local dir = proc.tmpdir("cksum")
    finally(function() proc.rmdir(dir) end)
    local sizes = { 0, 1, 3, 8, 100, 1000, 4097, 65537, 20000 }
    local data, paths = {}, {}
    for i, n in ipairs(sizes) do
      data[i] = random_bytes(n)
      paths[i] = dir .. "/d" .. i
      write_file(paths[i], data[i])
    end
    local lines = {}
    for l in py(PY_ORACLE, table.unpack(paths)):gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal(#sizes, #lines)
    for i, d in ipairs(data) do
      local want = {}
      for w in lines[i]:gmatch("%S+") do want[#want + 1] = w end
      assert.are.same(want, { checksum.compute("crc32", d), checksum.compute("crc32c", d),
        checksum.compute("sha1", d), checksum.compute("sha256", d) })
      -- the streaming form, fed in uneven pieces, agrees
      for j, alg in ipairs({ "crc32", "crc32c", "sha1", "sha256" }) do
        local h = checksum.new(alg)
        local pos = 1
        while pos <= #d do
          local n = math.random(1, 5000)
          h:update(d:sub(pos, pos + n - 1))
          pos = pos + n
        end
        assert.are.equal(want[j], h:b64digest())
      end
    end
  end)

  it("knows the published CRC32C check value", function()
    -- RFC 3720 B.4: CRC32C("123456789") = 0xE3069283
    assert.are.equal("4waSgw==", checksum.compute("crc32c", "123456789"))
  end)

  it("verify reports a mismatch as FlexibleChecksumError", function()
    assert.is_true(checksum.verify("crc32", checksum.compute("crc32", "abc"), "abc"))
    local ok, err = checksum.verify("crc32", checksum.compute("crc32", "abc"), "abd")
    assert.is_nil(ok)
    assert.are.equal("FlexibleChecksumError", err.code)
    assert.matches("did not match calculated checksum", err.message)
  end)

  it("raises on misuse", function()
    assert.has_error(function() checksum.compute("md5", "x") end)
    assert.has_error(function() checksum.compute("crc32", 42) end)
    assert.has_error(function() checksum.new("crc64nvme") end)
    assert.has_error(function() checksum.header_name(nil) end)
    assert.has_error(function() checksum.chunked_length(10, "nope") end)
  end)
end)

-- botocore's AwsChunkedWrapper framing the same bytes
local PY_CHUNKED = [==[
import io, sys
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, Sha1Checksum, Sha256Checksum
cls = {"crc32": Crc32Checksum, "sha1": Sha1Checksum, "sha256": Sha256Checksum}[sys.argv[2]]
data = open(sys.argv[1], "rb").read()
w = AwsChunkedWrapper(io.BytesIO(data), checksum_cls=cls,
                      checksum_name="x-amz-checksum-" + sys.argv[2], chunk_size=int(sys.argv[3]))
sys.stdout.buffer.write(w.read())
]==]

local function python_chunked(data, alg, chunk)
  local dir = proc.tmpdir("chunked")
  finally(function() proc.rmdir(dir) end)
  write_file(dir .. "/d", data)
  write_file(dir .. "/s.py", PY_CHUNKED)
  local f = assert(io.popen(("%s %s %s %s %d"):format(PY, proc.quote(dir .. "/s.py"), proc.quote(dir .. "/d"),
    alg, chunk)))
  local out = f:read("a")
  assert(f:close())
  return out
end

local function frame_all(data, alg, chunk)
  local pos = 1
  local src = checksum.chunked_source(function(n)
    local s = data:sub(pos, pos + n - 1)
    pos = pos + #s
    return s
  end, #data, alg, chunk)
  local parts = {}
  while true do
    local s, err = src()
    assert.is_nil(err)
    if not s then break end
    parts[#parts + 1] = s
  end
  return table.concat(parts)
end

describe("aws-chunked framing", function()
  it("is byte for byte botocore's AwsChunkedWrapper, and chunked_length is its length", function()
    for _, case in ipairs({ { 0, "crc32" }, { 1, "sha1" }, { 8192, "sha256" }, { 70000, "crc32" },
        { 3 * 16384, "sha256" } }) do
      local data = random_bytes(case[1])
      local mine = frame_all(data, case[2], 16384)
      assert.are.equal(python_chunked(data, case[2], 16384), mine)
      assert.are.equal(#mine, checksum.chunked_length(#data, case[2], 16384))
    end
    -- crc32c (botocore 1.29 needs awscrt for it): the length formula only
    local data = random_bytes(40000)
    assert.are.equal(#frame_all(data, "crc32c", 16384), checksum.chunked_length(40000, "crc32c", 16384))
  end)

  it("fails when the source ends before its declared length", function()
    local src = checksum.chunked_source(function() return "abc" end, 10, "crc32", 4)
    local s, err = src()
    assert.is_nil(s)
    assert.are.equal("BodyReadError", err.code)
  end)
end)

describe("checksum resolution (botocore httpchecksum)", function()
  local s3 = assert(model.load("s3"))
  local put, del, get, list = s3:operation("PutObject"), s3:operation("DeleteObjects"),
    s3:operation("GetObject"), s3:operation("ListBuckets")

  it("uses the algorithm the caller names, in either mode", function()
    assert.are.equal("sha256", checksum.request_algorithm(put, { ChecksumAlgorithm = "SHA256" }, "when_required"))
    assert.are.equal("crc32c", checksum.request_algorithm(put, { ChecksumAlgorithm = "CRC32C" }, "when_supported"))
    local a, err = checksum.request_algorithm(put, { ChecksumAlgorithm = "CRC64NVME" }, "when_required")
    assert.is_nil(a)
    assert.are.equal("FlexibleChecksumError", err.code)
  end)

  it("when_required: nothing unless required, then Content-MD5", function()
    assert.is_nil(checksum.request_algorithm(put, {}, "when_required"))
    assert.are.equal("md5", checksum.request_algorithm(del, {}, "when_required"))
    assert.is_nil(checksum.request_algorithm(list, {}, "when_required"))
  end)

  it("when_supported: CRC32 by default, named in the algorithm member's header", function()
    local a, h = checksum.request_algorithm(put, {}, "when_supported")
    assert.are.equal("crc32", a)
    assert.are.equal("x-amz-sdk-checksum-algorithm", h)
    assert.are.equal("crc32", (checksum.request_algorithm(del, {}, "when_supported")))
    assert.is_nil(checksum.request_algorithm(list, {}, "when_supported"))
  end)

  it("validates responses when ChecksumMode is set, in botocore's priority order", function()
    assert.is_nil(checksum.response_algorithms(get, {}))
    assert.are.same({ "crc32c", "crc32", "sha1", "sha256" },
      checksum.response_algorithms(get, { ChecksumMode = "ENABLED" }))
    assert.are.equal("ChecksumMode", checksum.validation_member(get, {}, "when_supported"))
    assert.is_nil(checksum.validation_member(get, {}, "when_required"))
    assert.is_nil(checksum.validation_member(get, { ChecksumMode = "ENABLED" }, "when_supported"))
    -- "-N" values are checksums of part checksums: not checkable, skipped
    local a, v = checksum.pick_response({ "crc32c", "crc32" },
      { ["x-amz-checksum-crc32c"] = "abc=-3", ["x-amz-checksum-crc32"] = "AAAAAA==" })
    assert.are.equal("crc32", a)
    assert.are.equal("AAAAAA==", v)
    assert.is_nil(checksum.pick_response({ "sha1" }, {}))
  end)
end)

local function s3_client(endpoint, extra)
  local session = assert(session_mod.new({ region = "us-east-1",
    credentials = { access_key = "S3RVER", secret_key = "S3RVER" }, config = { env = {} } }))
  local opts = { endpoint_url = endpoint, s3 = { addressing_style = "path" } }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(session:client("s3", opts))
end

describe("client request checksums", function()
  local dir
  setup(function() dir = proc.tmpdir("cksum-client") end)
  teardown(function() if dir then proc.rmdir(dir) end end)

  it("header form for in-memory bodies, no Content-MD5 beside it", function()
    local c = s3_client("http://127.0.0.1:9")
    local req = assert(c:put_object({ Bucket = "b", Key = "k", Body = "hello", ChecksumAlgorithm = "CRC32" },
      { dry_run = true }))
    assert.are.equal(checksum.compute("crc32", "hello"), req.headers["x-amz-checksum-crc32"])
    assert.are.equal("CRC32", req.headers["x-amz-sdk-checksum-algorithm"])
    assert.is_nil(req.headers["content-md5"])
    -- the default mode adds nothing but PutObject's Content-MD5 (botocore 1.29)
    local plain = assert(c:put_object({ Bucket = "b", Key = "k", Body = "hello" }, { dry_run = true }))
    assert.is_nil(plain.headers["x-amz-checksum-crc32"])
    assert.is_string(plain.headers["content-md5"])
    -- a value given by the caller is kept
    local given = assert(c:put_object({ Bucket = "b", Key = "k", Body = "hello", ChecksumAlgorithm = "CRC32",
      ChecksumCRC32 = "AAAAAA==" }, { dry_run = true }))
    assert.are.equal("AAAAAA==", given.headers["x-amz-checksum-crc32"])
  end)

  it("when_supported (option or AWS_REQUEST_CHECKSUM_CALCULATION) defaults to CRC32", function()
    local c = s3_client("http://127.0.0.1:9", { request_checksum_calculation = "when_supported" })
    local req = assert(c:put_object({ Bucket = "b", Key = "k", Body = "x" }, { dry_run = true }))
    assert.are.equal(checksum.compute("crc32", "x"), req.headers["x-amz-checksum-crc32"])
    local session = assert(session_mod.new({ region = "us-east-1",
      credentials = { access_key = "S3RVER", secret_key = "S3RVER" },
      config = { env = { AWS_REQUEST_CHECKSUM_CALCULATION = "when_supported" } } }))
    local c2 = assert(session:client("s3", { endpoint_url = "http://127.0.0.1:9" }))
    req = assert(c2:put_object({ Bucket = "b", Key = "k", Body = "x" }, { dry_run = true }))
    assert.are.equal(checksum.compute("crc32", "x"), req.headers["x-amz-checksum-crc32"])
    assert.has_error(function() s3_client("http://127.0.0.1:9", { request_checksum_calculation = "always" }) end)
    -- presigning (aio_aws.presign asks _prepare with presign = true) adds no default
    local pre = assert(c:_prepare("PutObject", { Bucket = "b", Key = "k", Body = "x" }, { presign = true }))
    assert.is_nil(pre.headers["x-amz-checksum-crc32"])
    assert.is_nil(pre.headers["x-amz-sdk-checksum-algorithm"])
  end)

  it("header form over http for a file, computed in one pass over the file", function()
    local data = random_bytes(100000)
    write_file(dir .. "/f1", data)
    local c = s3_client("http://127.0.0.1:9")
    local req = assert(c:put_object({ Bucket = "b", Key = "k", Body = { file = dir .. "/f1" },
      ChecksumAlgorithm = "SHA1" }, { dry_run = true }))
    assert.are.equal(checksum.compute("sha1", data), req.headers["x-amz-checksum-sha1"])
    assert.are.equal(dir .. "/f1", req.body_file)
    assert.is_nil(req.headers["content-encoding"])
  end)

  it("trailer form over https for a streamed body: botocore's framing and headers", function()
    local data = random_bytes(200000)
    write_file(dir .. "/f2", data)
    local c = s3_client("https://127.0.0.1:9")
    local req = assert(c:put_object({ Bucket = "b", Key = "k", Body = { file = dir .. "/f2" },
      ChecksumAlgorithm = "CRC32", ContentEncoding = "gzip" }, { dry_run = true }))
    assert.are.equal("aws-chunked,gzip", req.headers["content-encoding"])
    assert.are.equal("x-amz-checksum-crc32", req.headers["x-amz-trailer"])
    assert.are.equal("200000", req.headers["x-amz-decoded-content-length"])
    assert.are.equal("STREAMING-UNSIGNED-PAYLOAD-TRAILER", req.headers["x-amz-content-sha256"])
    assert.is_nil(req.headers["x-amz-checksum-crc32"])
    local src, close = req.body_open()
    local parts = {}
    for s in src do parts[#parts + 1] = s end
    close()
    local framed = table.concat(parts)
    assert.are.equal(req.body_length, #framed)
    assert.are.equal(python_chunked(data, "crc32", checksum.CHUNK_SIZE), framed)
  end)
end)

-- A TLS server that decodes an aws-chunked upload itself and answers 200
-- only when the trailer's checksum (zlib) matches the decoded bytes and
-- the declared lengths hold; 400 with the reason otherwise.
local PY_TLS = [==[
import base64, ssl, sys, zlib
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_PUT(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        out, pos, trailer = bytearray(), 0, {}
        while True:
            eol = raw.index(b"\r\n", pos)
            size = int(raw[pos:eol], 16)
            pos = eol + 2
            if size == 0:
                while True:
                    eol = raw.index(b"\r\n", pos)
                    line = raw[pos:eol]
                    pos = eol + 2
                    if not line: break
                    k, v = line.split(b":", 1)
                    trailer[k.decode().lower()] = v.decode()
                break
            out += raw[pos:pos + size]
            pos += size + 2
        want = base64.b64encode(zlib.crc32(bytes(out)).to_bytes(4, "big")).decode()
        problems = []
        if pos != len(raw): problems.append("trailing bytes")
        if self.headers["x-amz-trailer"] not in trailer: problems.append("no trailer")
        if trailer.get("x-amz-checksum-crc32") != want: problems.append("crc mismatch")
        if int(self.headers["x-amz-decoded-content-length"]) != len(out): problems.append("decoded length")
        if "aws-chunked" not in self.headers["Content-Encoding"]: problems.append("encoding")
        body = (" ".join(problems) or "ok %d" % len(out)).encode()
        self.send_response(400 if problems else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"x"')
        self.end_headers()
        self.wfile.write(body)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = HTTPServer(("127.0.0.1", 0), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("port", srv.server_address[1], flush=True)
srv.serve_forever()
]==]

describe("client checksums, live", function()
  local fault, tls, tls_srv, dir, tls_port
  setup(function()
    fault = require("support.fault_server").start()
    dir = proc.tmpdir("cksum-live")
    tls = assert(require("support.tls").generate())
    write_file(dir .. "/srv.py", PY_TLS)
    tls_srv = proc.start({ argv = { PY, dir .. "/srv.py", tls.cert_file, tls.key_file }, name = "tls-chunked" })
    tls_port = assert(tls_srv:wait_log("port (%d+)"))
  end)
  teardown(function()
    if tls_srv then tls_srv:stop() end
    if tls then tls:remove() end
    if fault then fault:stop() end
    if dir then proc.rmdir(dir) end
    -- the support modules' control sockets close when collected: here, not in a later spec's fd count
    collectgarbage()
    collectgarbage()
  end)
  before_each(function() fault:reset() end)

  it("the server receives the x-amz-checksum header", function()
    local c = s3_client(fault:url(""))
    finally(function() c:close() end)
    local data = random_bytes(5000)
    write_file(dir .. "/up", data)
    run(function()
      assert(c:put_object({ Bucket = "b", Key = "mem", Body = data, ChecksumAlgorithm = "CRC32C" }))
      assert(c:put_object({ Bucket = "b", Key = "file", Body = { file = dir .. "/up" }, ChecksumAlgorithm = "SHA256" }))
    end)
    local reqs = fault:requests()
    assert.are.equal(2, #reqs)
    local want = py(PY_ORACLE, dir .. "/up")
    local w = {}
    for x in want:gmatch("%S+") do w[#w + 1] = x end
    assert.are.equal(w[2], reqs[1].headers["x-amz-checksum-crc32c"])
    assert.are.equal(w[4], reqs[2].headers["x-amz-checksum-sha256"])
    assert.are.equal(5000, reqs[2].body_length)
  end)

  it("an aws-chunked upload over TLS is decoded and its trailer verified by the server", function()
    local data = random_bytes(300001)
    write_file(dir .. "/big", data)
    local c = s3_client("https://127.0.0.1:" .. tls_port, { verify = tls.ca_file })
    finally(function() c:close() end)
    run(function()
      local out, err = c:put_object({ Bucket = "b", Key = "k", Body = { file = dir .. "/big" },
        ChecksumAlgorithm = "CRC32" })
      assert.is_nil(err)
      assert.are.equal(200, out.ResponseMetadata.HTTPStatusCode)
      -- a file handle goes the same way, from its current position
      local f = assert(io.open(dir .. "/big", "rb"))
      f:seek("set", 1)
      out, err = c:put_object({ Bucket = "b", Key = "k", Body = f, ChecksumAlgorithm = "CRC32" })
      f:close()
      assert.is_nil(err)
      assert.are.equal(200, out.ResponseMetadata.HTTPStatusCode)
    end)
  end)

  it("validates response checksums: a match passes, a mismatch is FlexibleChecksumError", function()
    local c = s3_client(fault:url(""))
    finally(function() c:close() end)
    local body = "response payload"
    fault:script({
      { status = 200, body = body, headers = { ["x-amz-checksum-crc32"] = checksum.compute("crc32", body) } },
      { status = 200, body = body, headers = { ["x-amz-checksum-sha1"] = checksum.compute("sha1", "other") } },
      { status = 200, body = body, headers = { ["x-amz-checksum-sha1"] = checksum.compute("sha1", "other") } },
      { status = 200, body = body, headers = { ["x-amz-checksum-crc32"] = "AAAAAA==-2" } },
    })
    run(function()
      local out = assert(c:get_object({ Bucket = "b", Key = "k", ChecksumMode = "ENABLED" }))
      assert.are.equal(body, assert(out.Body:read_all()))
      out = assert(c:get_object({ Bucket = "b", Key = "k", ChecksumMode = "ENABLED" }))
      local chunks = {}
      local s, err
      repeat
        s, err = out.Body:read(5)
        chunks[#chunks + 1] = s
      until not s
      assert.are.equal(body, table.concat(chunks))
      assert.are.equal("FlexibleChecksumError", err.code)
      -- without ChecksumMode (when_required) nothing is checked
      out = assert(c:get_object({ Bucket = "b", Key = "k" }))
      assert.are.equal(body, assert(out.Body:read_all()))
      -- a checksum of part checksums cannot be checked: skipped
      out = assert(c:get_object({ Bucket = "b", Key = "k", ChecksumMode = "ENABLED" }))
      assert.are.equal(body, assert(out.Body:read_all()))
    end)
    assert.are.equal("ENABLED", fault:requests()[1].headers["x-amz-checksum-mode"])
  end)

  it("when_supported asks for validation on its own (x-amz-checksum-mode)", function()
    local c = s3_client(fault:url(""), { response_checksum_validation = "when_supported" })
    finally(function() c:close() end)
    fault:script({ { status = 200, body = "abc", headers = { ["x-amz-checksum-crc32"] = checksum.compute("crc32", "abd") } } })
    run(function()
      local out = assert(c:get_object({ Bucket = "b", Key = "k" }))
      local s, err = out.Body:read_all()
      assert.is_nil(s)
      assert.are.equal("FlexibleChecksumError", err.code)
    end)
    assert.are.equal("ENABLED", fault:requests()[1].headers["x-amz-checksum-mode"])
    local _ = aws
  end)
end)
