-- The local endpoint's S3, called directly with raw server requests (the
-- live tests through the project's client and the HTTP server are at the
-- end of this file). Expected values come from the Amazon S3 API Reference
-- (error codes and statuses from ErrorResponses.html, element names from
-- each operation's page, the multipart ETag from "Checking object
-- integrity"), RFC 7232 / 7233 and hand-computed digests, not from the
-- implementation.
local core = require "aio_aws.core"
local sigv4 = require "aio_aws.sigv4"
local store = require "aio_aws.emulator.store"
local s3_mod = require "aio_aws.emulator.s3"

local NOW = 1700000000.25 -- 2023-11-14T22:13:20.250Z
local MiB = 1024 * 1024

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(store.mkdir_p(p))
  return p
end

local function rm_rf(p) os.execute("rm -rf '" .. p .. "'") end

local function new(dir, opts)
  local ctx = { data_dir = dir, store = store, clock = function() return NOW end, region = "us-east-1",
    account_id = "123456789012", url = "http://127.0.0.1:4566" }
  for k, v in pairs(opts or {}) do ctx[k] = v end
  return assert(s3_mod.new(ctx))
end

-- a raw server request (contract section 1)
local function request(method, target, headers, body)
  local path, query = target:match("^([^?]*)%??(.*)$")
  local h = {}
  for k, v in pairs(headers or {}) do h[k:lower()] = v end
  local req = { method = method, target = target, path = path, query = query, headers = h, http_version = "1.1" }
  if type(body) == "table" then
    req.body_file, req.body_length = body.file, body.length
  else
    req.body = body or ""
  end
  return req
end

local function call(s, method, target, headers, body, info)
  return s:handle(request(method, target, headers, body), info)
end

-- the decoded form of core.xml_decode; a sequence (repeated children) also
-- gets name -> first value, so single fields read the same either way
local function xml(res)
  local node, root = core.xml_decode(res.body)
  assert(node, "not XML: " .. tostring(res.body))
  if type(node) == "table" and node[1] ~= nil then
    for i = #node - 1, 1, -2 do node[node[i]] = node[i + 1] end
  end
  return node, root
end

-- the S3 error document: <Error><Code/><Message/><Resource/><RequestId/></Error>
local function check_error(res, status, code)
  assert.equal(status, res.status, res.body)
  local node, root = xml(res)
  assert.equal("Error", root)
  assert.equal(code, node.Code)
  assert.is_string(node.Message)
  assert.is_string(node.Resource)
  assert.equal(res.headers["x-amz-request-id"], node.RequestId)
  assert.equal("application/xml", res.headers["content-type"])
  return node
end

local function md5q(s) return '"' .. core.md5_hex(s) .. '"' end

local function body_of(res)
  if res.body then return res.body end
  local f = assert(io.open(res.body_file, "rb"))
  f:seek("set", res.body_offset or 0)
  local data = f:read(res.body_length or "a")
  f:close()
  return data or ""
end

-- list of the values of repeated elements in a decoded (record/sequence) node
local function all(node, name)
  local out = {}
  if type(node) ~= "table" then return out end
  if node[1] ~= nil then
    for i = 1, #node, 2 do
      if node[i] == name then out[#out + 1] = node[i + 1] end
    end
  elseif node[name] ~= nil then
    out[1] = node[name]
  end
  return out
end

local function field(node, name)
  return all(node, name)[1]
end

local function keys_of(node)
  local out = {}
  for i, c in ipairs(all(node, "Contents")) do out[i] = c.Key end
  return out
end

local function prefixes_of(node)
  local out = {}
  for i, c in ipairs(all(node, "CommonPrefixes")) do out[i] = c.Prefix end
  return out
end

describe("emulator s3 (service object)", function()
  local dir, s
  before_each(function()
    dir = tmpdir()
    s = new(dir)
  end)
  after_each(function() rm_rf(dir) end)

  local function put(key, body, headers)
    local res = call(s, "PUT", "/bkt/" .. key, headers, body)
    assert.equal(200, res.status, res.body)
    return res
  end

  describe("new and handle", function()
    it("raises on misuse", function()
      assert.has_error(function() s3_mod.new() end, "aio_aws.emulator.s3.new: ctx must be a table")
      assert.has_error(function() s3_mod.new{} end, "aio_aws.emulator.s3.new: ctx.data_dir must be a non-empty string")
      assert.has_error(function() s3_mod.new{ data_dir = dir, clock = 5 } end,
        "aio_aws.emulator.s3.new: ctx.clock must be a function")
      assert.has_error(function() s:handle("GET /") end, "aio_aws.emulator.s3: req must be a table")
      assert.has_error(function() s:handle(request("GET", "/"), "x") end,
        "aio_aws.emulator.s3: info must be a table or nil")
    end)

    it("returns nil, err when the data directory cannot be made", function()
      local f = assert(io.open(dir .. "/file", "w"))
      f:close()
      local svc, err = s3_mod.new{ data_dir = dir .. "/file/s3", store = store }
      assert.is_nil(svc)
      assert.matches("cannot use", err)
    end)

    it("takes a request with only a method and a target", function()
      local res = s:handle({ method = "PUT", target = "/only" })
      assert.equal(200, res.status)
      res = s:handle({ method = "GET", target = "/only?list-type=2&prefix=x" })
      assert.equal(200, res.status)
      assert.equal("x", xml(res).Prefix)
    end)

    it("answers InternalError when the disk fails, and keeps serving", function()
      assert.equal(200, call(s, "PUT", "/bkt").status)
      rm_rf(dir .. "/objects")
      check_error(call(s, "PUT", "/bkt/k", {}, "x"), 500, "InternalError")
      check_error(call(s, "GET", "/bkt/k"), 404, "NoSuchKey")
      assert(store.mkdir_p(dir .. "/objects"))
      assert.equal(200, call(s, "PUT", "/bkt/k", {}, "x").status)
      assert.equal("x", call(s, "GET", "/bkt/k").body)
    end)

    it("refuses a closed service", function()
      s:close()
      assert.has_error(function() s:handle(request("GET", "/")) end, "aio_aws.emulator.s3: the service is closed")
    end)

    it("answers unsupported sub-resources 501 and wrong methods 405", function()
      assert.equal(200, call(s, "PUT", "/bkt").status)
      check_error(call(s, "GET", "/bkt?acl"), 501, "NotImplemented")
      check_error(call(s, "PUT", "/bkt?versioning"), 501, "NotImplemented")
      -- never versioned: an empty VersioningConfiguration (GetBucketVersioning)
      local node, root = xml(call(s, "GET", "/bkt?versioning"))
      assert.equal("VersioningConfiguration", root)
      assert.is_nil(node.Status)
      check_error(call(s, "GET", "/nob?versioning"), 404, "NoSuchBucket")
      check_error(call(s, "PUT", "/bkt/k?tagging"), 501, "NotImplemented")
      check_error(call(s, "POST", "/bkt/k"), 405, "MethodNotAllowed")
      check_error(call(s, "DELETE", "/"), 405, "MethodNotAllowed")
    end)
  end)

  describe("buckets", function()
    it("creates, lists, heads and deletes a bucket", function()
      local res = call(s, "PUT", "/bkt")
      assert.equal(200, res.status)
      assert.equal("/bkt", res.headers.location)
      assert.is_string(res.headers["x-amz-request-id"])
      res = call(s, "GET", "/")
      local node, root = xml(res)
      assert.equal("ListAllMyBucketsResult", root)
      assert.equal("http://s3.amazonaws.com/doc/2006-03-01/", node._attr.xmlns)
      assert.equal(64, #node.Owner.ID)
      local b = field(node.Buckets, "Bucket")
      assert.equal("bkt", b.Name)
      assert.equal("2023-11-14T22:13:20.250Z", b.CreationDate)
      res = call(s, "HEAD", "/bkt")
      assert.equal(200, res.status)
      assert.equal("us-east-1", res.headers["x-amz-bucket-region"])
      assert.is_nil(res.body)
      assert.equal(204, call(s, "DELETE", "/bkt").status)
      res = call(s, "HEAD", "/bkt")
      assert.equal(404, res.status)
      assert.is_nil(res.body) -- HEAD errors carry no body
      xml(call(s, "GET", "/"))
      assert.same({}, all(xml(call(s, "GET", "/")).Buckets, "Bucket"))
    end)

    it("lists buckets by name", function()
      for _, n in ipairs { "ccc", "aaa", "bbb" } do assert.equal(200, call(s, "PUT", "/" .. n).status) end
      local names = {}
      for i, b in ipairs(all(xml(call(s, "GET", "/")).Buckets, "Bucket")) do names[i] = b.Name end
      assert.same({ "aaa", "bbb", "ccc" }, names)
    end)

    it("answers 200 to re-creating an own bucket in us-east-1, BucketAlreadyOwnedByYou elsewhere", function()
      assert.equal(200, call(s, "PUT", "/bkt").status)
      assert.equal(200, call(s, "PUT", "/bkt").status)
      local eu = new(tmpdir(), { region = "eu-west-1" })
      assert.equal(200, call(eu, "PUT", "/bkt").status)
      local e = check_error(call(eu, "PUT", "/bkt"), 409, "BucketAlreadyOwnedByYou")
      assert.equal("bkt", e.BucketName)
      rm_rf(eu.ctx.data_dir)
    end)

    it("enforces the bucket naming rules", function()
      for _, bad in ipairs { "ab", ("a"):rep(64), "Abc", "a_b", "-ab", "ab-", ".ab", "ab.", "a..b", "192.168.5.4",
        "xn--ab", "sthree-ab", "ab-s3alias", "ab--ol-s3", "a b" } do
        local e = check_error(call(s, "PUT", "/" .. bad:gsub(" ", "%%20")), 400, "InvalidBucketName")
        assert.equal(bad, e.BucketName)
      end
      for _, good in ipairs { "abc", ("a"):rep(63), "a.b-c", "1.2.3", "my.bucket.2024" } do
        assert.equal(200, call(s, "PUT", "/" .. good).status, good)
      end
    end)

    it("keeps the LocationConstraint and reports it", function()
      local cfg = '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        .. "<LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>"
      assert.equal(200, call(s, "PUT", "/eub", {}, cfg).status)
      local node, root = xml(call(s, "GET", "/eub?location"))
      assert.equal("LocationConstraint", root)
      assert.equal("eu-west-1", node._text)
      assert.equal("eu-west-1", call(s, "HEAD", "/eub").headers["x-amz-bucket-region"])
      -- us-east-1 buckets: an empty LocationConstraint (GetBucketLocation)
      assert.equal(200, call(s, "PUT", "/use").status)
      local res = call(s, "GET", "/use?location")
      assert.equal(200, res.status)
      assert.matches("<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006%-03%-01/\"></LocationConstraint>$",
        res.body)
    end)

    it("rejects malformed configurations and us-east-1 as a constraint", function()
      check_error(call(s, "PUT", "/bb1", {}, "<CreateBucketConfiguration><Loc"), 400, "MalformedXML")
      check_error(call(s, "PUT", "/bb1", {}, "<Other/>"), 400, "MalformedXML")
      check_error(call(s, "PUT", "/bb1", {}, "<CreateBucketConfiguration><LocationConstraint>us-east-1"
        .. "</LocationConstraint></CreateBucketConfiguration>"), 400, "InvalidLocationConstraint")
      assert.equal(404, call(s, "HEAD", "/bb1").status)
    end)

    it("answers NoSuchBucket and BucketNotEmpty", function()
      local e = check_error(call(s, "DELETE", "/nob"), 404, "NoSuchBucket")
      assert.equal("nob", e.BucketName)
      assert.equal("/nob", e.Resource)
      check_error(call(s, "GET", "/nob?location"), 404, "NoSuchBucket")
      check_error(call(s, "GET", "/nob?list-type=2"), 404, "NoSuchBucket")
      check_error(call(s, "PUT", "/nob/k", {}, "x"), 404, "NoSuchBucket")
      check_error(call(s, "GET", "/nob/k"), 404, "NoSuchBucket")
      assert.equal(200, call(s, "PUT", "/bkt").status)
      put("k", "x")
      check_error(call(s, "DELETE", "/bkt"), 409, "BucketNotEmpty")
      assert.equal(204, call(s, "DELETE", "/bkt/k").status)
      assert.equal(204, call(s, "DELETE", "/bkt").status)
    end)

    it("serves virtual-hosted-style requests", function()
      assert.equal(200, call(s, "PUT", "/", {}, nil, { bucket_from_host = "vhb" }).status)
      assert.equal(200, call(s, "PUT", "/a/b%20c", {}, "data", { bucket_from_host = "vhb" }).status)
      assert.equal("data", call(s, "GET", "/vhb/a/b%20c").body)
      assert.equal("data", call(s, "GET", "/a/b%20c", {}, nil, { bucket_from_host = "vhb" }).body)
      assert.same({ "a/b c" }, keys_of(xml(call(s, "GET", "/?list-type=2", {}, nil, { bucket_from_host = "vhb" }))))
    end)
  end)

  describe("objects", function()
    before_each(function() assert.equal(200, call(s, "PUT", "/bkt").status) end)

    it("puts and gets an object with its metadata", function()
      local res = put("dir/hello.txt", "hello", { ["Content-Type"] = "text/plain", ["x-amz-meta-color"] = "blue",
        ["Cache-Control"] = "no-cache", ["Content-Disposition"] = "inline" })
      -- MD5("hello"), quoted (RFC 7232 entity tag)
      assert.equal('"5d41402abc4b2a76b9719d911017c592"', res.headers.etag)
      res = call(s, "GET", "/bkt/dir/hello.txt")
      assert.equal(200, res.status)
      assert.equal("hello", res.body)
      assert.equal("text/plain", res.headers["content-type"])
      assert.equal("5", res.headers["content-length"])
      assert.equal("blue", res.headers["x-amz-meta-color"])
      assert.equal("no-cache", res.headers["cache-control"])
      assert.equal("inline", res.headers["content-disposition"])
      assert.equal("bytes", res.headers["accept-ranges"])
      assert.equal("Tue, 14 Nov 2023 22:13:20 GMT", res.headers["last-modified"])
      assert.equal('"5d41402abc4b2a76b9719d911017c592"', res.headers.etag)
      res = call(s, "HEAD", "/bkt/dir/hello.txt")
      assert.equal(200, res.status)
      assert.equal("5", res.headers["content-length"])
      assert.is_nil(res.body)
      assert.is_nil(res.body_file)
    end)

    it("stores binary/octet-stream when no Content-Type is sent, and empty objects", function()
      put("e", "")
      local res = call(s, "GET", "/bkt/e")
      assert.equal("binary/octet-stream", res.headers["content-type"])
      assert.equal("", res.body)
      assert.equal('"d41d8cd98f00b204e9800998ecf8427e"', res.headers.etag) -- MD5("")
    end)

    it("keeps keys with spaces, unicode, slashes and plus signs", function()
      local keys = { { "a%20b/c%2Bd/%C3%A9t%C3%A9.txt", "a b/c+d/été.txt" }, { "x//y", "x//y" },
        { "%E2%9C%93%3F%26%3D", "✓?&=" } }
      for i, k in ipairs(keys) do put(k[1], "v" .. i) end
      for i, k in ipairs(keys) do assert.equal("v" .. i, call(s, "GET", "/bkt/" .. k[1]).body) end
      local listed = keys_of(xml(call(s, "GET", "/bkt?list-type=2")))
      table.sort(listed)
      local want = { keys[1][2], keys[2][2], keys[3][2] }
      table.sort(want)
      assert.same(want, listed)
    end)

    it("rejects keys over 1024 bytes", function()
      check_error(call(s, "PUT", "/bkt/" .. ("k"):rep(1025), {}, "x"), 400, "KeyTooLongError")
      put(("k"):rep(1024), "x")
    end)

    it("rejects user metadata over 2 KB", function()
      check_error(call(s, "PUT", "/bkt/m", { ["x-amz-meta-big"] = ("v"):rep(2100) }, "x"), 400, "MetadataTooLarge")
    end)

    it("checks Content-MD5", function()
      put("m", "hello", { ["content-md5"] = "XUFAKrxLKna5cZ2REBfFkg==" }) -- base64(MD5("hello"))
      local e = check_error(call(s, "PUT", "/bkt/m2", { ["content-md5"] = "XUFAKrxLKna5cZ2REBfFkg==" }, "hellO"),
        400, "BadDigest")
      assert.equal("XUFAKrxLKna5cZ2REBfFkg==", e.ExpectedDigest)
      check_error(call(s, "PUT", "/bkt/m2", { ["content-md5"] = "not base64!" }, "x"), 400, "InvalidDigest")
      check_error(call(s, "PUT", "/bkt/m2", { ["content-md5"] = "aGVsbG8=" }, "x"), 400, "InvalidDigest")
      check_error(call(s, "GET", "/bkt/m2"), 404, "NoSuchKey")
    end)

    it("checks x-amz-content-sha256", function()
      local sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" -- SHA-256("hello")
      put("s", "hello", { ["x-amz-content-sha256"] = sha })
      put("u", "hello", { ["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD" })
      local e = check_error(call(s, "PUT", "/bkt/s2", { ["x-amz-content-sha256"] = sha }, "world"), 400,
        "XAmzContentSHA256Mismatch")
      assert.equal(sha, e.ClientComputedContentSHA256)
      check_error(call(s, "PUT", "/bkt/s2", { ["x-amz-content-sha256"] = "abc" }, "x"), 400, "InvalidArgument")
      check_error(call(s, "GET", "/bkt/s2"), 404, "NoSuchKey")
    end)

    it("checks and keeps flexible checksums (x-amz-checksum-*)", function()
      -- CRC32("hello") = 0x3610a686; CRC32C("hello") = 0x9a71bb4c; SHA-1 and
      -- SHA-256 of "hello" in base64
      local cases = { crc32 = "NhCmhg==", crc32c = "mnG7TA==", sha1 = "qvTGHdzF6KLavt4PO0gs2a6pQ00=",
        sha256 = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=" }
      for alg, v in pairs(cases) do
        local res = put("ck-" .. alg, "hello", { ["x-amz-checksum-" .. alg] = v })
        assert.equal(v, res.headers["x-amz-checksum-" .. alg])
        res = call(s, "GET", "/bkt/ck-" .. alg, { ["x-amz-checksum-mode"] = "ENABLED" })
        assert.equal(v, res.headers["x-amz-checksum-" .. alg])
        assert.is_nil(call(s, "GET", "/bkt/ck-" .. alg).headers["x-amz-checksum-" .. alg])
        check_error(call(s, "PUT", "/bkt/bad", { ["x-amz-checksum-" .. alg] = v }, "hellO"), 400, "BadDigest")
      end
      check_error(call(s, "PUT", "/bkt/bad", { ["x-amz-checksum-crc32"] = "short" }, "hello"), 400, "InvalidRequest")
      check_error(call(s, "PUT", "/bkt/bad", { ["x-amz-checksum-crc32"] = "NhCmhg==",
        ["x-amz-checksum-sha1"] = "qvTGHdzF6KLavt4PO0gs2a6pQ00=" }, "hello"), 400, "InvalidRequest")
      check_error(call(s, "GET", "/bkt/bad"), 404, "NoSuchKey")
    end)

    it("takes a spooled body file and answers large objects from a file", function()
      local size = 300 * 1024 + 7
      local data = {}
      for i = 1, size // 16 + 1 do data[i] = string.format("%015d\n", i) end
      data = table.concat(data):sub(1, size)
      local spool = os.tmpname()
      local f = assert(io.open(spool, "wb"))
      f:write(data)
      f:close()
      local res = call(s, "PUT", "/bkt/big", { ["content-md5"] = core.md5_base64(data) }, { file = spool, length = size })
      assert.equal(200, res.status, res.body)
      assert.equal(md5q(data), res.headers.etag)
      os.remove(spool)
      res = call(s, "GET", "/bkt/big")
      assert.equal(200, res.status)
      assert.is_string(res.body_file)
      assert.equal(size, res.body_length)
      assert.equal(data, body_of(res))
      res = call(s, "GET", "/bkt/big", { range = "bytes=1000-299999" })
      assert.equal(206, res.status)
      assert.equal(1000, res.body_offset)
      assert.equal(299000, res.body_length)
      assert.equal(data:sub(1001, 300000), body_of(res))
    end)

    it("serves byte ranges (RFC 7233) and InvalidRange", function()
      put("r", "0123456789")
      local cases = { { "bytes=0-0", "0", "bytes 0-0/10" }, { "bytes=2-5", "2345", "bytes 2-5/10" },
        { "bytes=7-", "789", "bytes 7-9/10" }, { "bytes=-3", "789", "bytes 7-9/10" },
        { "bytes=5-100", "56789", "bytes 5-9/10" }, { "bytes=-20", "0123456789", "bytes 0-9/10" } }
      for _, c in ipairs(cases) do
        local res = call(s, "GET", "/bkt/r", { range = c[1] })
        assert.equal(206, res.status, c[1])
        assert.equal(c[2], res.body, c[1])
        assert.equal(c[3], res.headers["content-range"], c[1])
        assert.equal(tostring(#c[2]), res.headers["content-length"])
      end
      -- unsatisfiable: 416 with the requested range and the object size
      local e = check_error(call(s, "GET", "/bkt/r", { range = "bytes=10-" }), 416, "InvalidRange")
      assert.equal("bytes=10-", e.RangeRequested)
      assert.equal("10", e.ActualObjectSize)
      -- a syntactically invalid range is ignored (RFC 7233 section 3.1)
      for _, r in ipairs { "bytes=5-2", "items=0-1", "bytes=0-1,3-4" } do
        local res = call(s, "GET", "/bkt/r", { range = r })
        assert.equal(200, res.status, r)
        assert.equal("0123456789", res.body)
      end
      local res = call(s, "HEAD", "/bkt/r", { range = "bytes=2-3" })
      assert.equal(206, res.status)
      assert.equal("2", res.headers["content-length"])
    end)

    it("evaluates conditional headers (RFC 7232 section 6)", function()
      put("c", "hello")
      local etag = '"5d41402abc4b2a76b9719d911017c592"'
      local before, after = "Tue, 14 Nov 2023 22:13:19 GMT", "Tue, 14 Nov 2023 22:13:21 GMT"
      local same = "Tue, 14 Nov 2023 22:13:20 GMT"
      local function st(h) return call(s, "GET", "/bkt/c", h).status end
      assert.equal(200, st { ["if-match"] = etag })
      assert.equal(200, st { ["if-match"] = '"x", ' .. etag })
      assert.equal(200, st { ["if-match"] = "*" })
      local e = check_error(call(s, "GET", "/bkt/c", { ["if-match"] = '"other"' }), 412, "PreconditionFailed")
      assert.equal("If-Match", e.Condition)
      assert.equal(304, st { ["if-none-match"] = etag })
      assert.equal(304, st { ["if-none-match"] = "*" })
      assert.equal(200, st { ["if-none-match"] = '"other"' })
      assert.equal(304, st { ["if-modified-since"] = same })
      assert.equal(304, st { ["if-modified-since"] = after })
      assert.equal(200, st { ["if-modified-since"] = before })
      assert.equal(412, st { ["if-unmodified-since"] = before })
      assert.equal(200, st { ["if-unmodified-since"] = same })
      -- RFC 850 and asctime dates are HTTP dates too
      assert.equal(304, st { ["if-modified-since"] = "Tuesday, 14-Nov-23 22:13:21 GMT" })
      assert.equal(304, st { ["if-modified-since"] = "Tue Nov 14 22:13:21 2023" })
      -- an invalid date is ignored
      assert.equal(200, st { ["if-modified-since"] = "yesterday" })
      -- If-Match true makes If-Unmodified-Since irrelevant (GetObject)
      assert.equal(200, st { ["if-match"] = etag, ["if-unmodified-since"] = before })
      -- If-None-Match false (the tag differs) and If-Modified-Since: 200
      assert.equal(200, st { ["if-none-match"] = '"other"', ["if-modified-since"] = after })
      local res = call(s, "GET", "/bkt/c", { ["if-none-match"] = etag })
      assert.equal(etag, res.headers.etag)
      assert.is_nil(res.body)
      res = call(s, "HEAD", "/bkt/c", { ["if-match"] = '"other"' })
      assert.equal(412, res.status)
      assert.is_nil(res.body)
    end)

    it("conditional writes: If-None-Match * and If-Match on PutObject", function()
      put("cw", "first", { ["if-none-match"] = "*" })
      local e = check_error(call(s, "PUT", "/bkt/cw", { ["if-none-match"] = "*" }, "second"), 412, "PreconditionFailed")
      assert.equal("If-None-Match", e.Condition)
      check_error(call(s, "PUT", "/bkt/cw", { ["if-match"] = md5q("other") }, "second"), 412, "PreconditionFailed")
      put("cw", "second", { ["if-match"] = md5q("first") })
      assert.equal("second", call(s, "GET", "/bkt/cw").body)
      check_error(call(s, "PUT", "/bkt/none", { ["if-match"] = md5q("x") }, "x"), 404, "NoSuchKey")
      check_error(call(s, "PUT", "/bkt/cw", { ["if-none-match"] = md5q("x") }, "x"), 501, "NotImplemented")
    end)

    it("applies response-* overrides", function()
      put("o", "x", { ["content-type"] = "text/plain" })
      local res = call(s, "GET", "/bkt/o?response-content-type=application%2Fjson&response-content-disposition=attachment")
      assert.equal("application/json", res.headers["content-type"])
      assert.equal("attachment", res.headers["content-disposition"])
    end)

    it("answers NoSuchKey with the key", function()
      local e = check_error(call(s, "GET", "/bkt/no/such%20key"), 404, "NoSuchKey")
      assert.equal("no/such key", e.Key)
      local res = call(s, "HEAD", "/bkt/nokey")
      assert.equal(404, res.status)
      assert.is_nil(res.body)
    end)

    it("deletes objects, missing ones too", function()
      put("d", "x")
      assert.equal(204, call(s, "DELETE", "/bkt/d").status)
      assert.equal(204, call(s, "DELETE", "/bkt/d").status)
      assert.equal(404, call(s, "GET", "/bkt/d").status)
    end)

    it("deletes several objects (DeleteObjects)", function()
      put("a", "1"); put("b", "2"); put("c", "3")
      local body = '<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a</Key></Object>'
        .. "<Object><Key>c</Key></Object><Object><Key>missing</Key></Object></Delete>"
      local res = call(s, "POST", "/bkt?delete", { ["content-md5"] = core.md5_base64(body) }, body)
      assert.equal(200, res.status, res.body)
      local node, root = xml(res)
      assert.equal("DeleteResult", root)
      local deleted = {}
      for i, d in ipairs(all(node, "Deleted")) do deleted[i] = d.Key end
      assert.same({ "a", "c", "missing" }, deleted)
      assert.same({ "b" }, keys_of(xml(call(s, "GET", "/bkt?list-type=2"))))
      -- Quiet: only errors are reported
      body = "<Delete><Quiet>true</Quiet><Object><Key>b</Key></Object></Delete>"
      res = call(s, "POST", "/bkt?delete", { ["content-md5"] = core.md5_base64(body) }, body)
      assert.equal(200, res.status)
      assert.same({}, all(xml(res), "Deleted"))
      assert.same({}, keys_of(xml(call(s, "GET", "/bkt?list-type=2"))))
    end)

    it("rejects DeleteObjects without Content-MD5, malformed or with over 1000 keys", function()
      local body = "<Delete><Object><Key>a</Key></Object></Delete>"
      check_error(call(s, "POST", "/bkt?delete", {}, body), 400, "InvalidRequest")
      check_error(call(s, "POST", "/bkt?delete", { ["content-md5"] = core.md5_base64("x") }, body), 400, "BadDigest")
      for _, b in ipairs { "<Delete><Object><Key>a</Key></Object>", "<Delete></Delete>", "<Other/>",
        "<Delete><Object><Key><K/></Key></Object></Delete>" } do
        check_error(call(s, "POST", "/bkt?delete", { ["content-md5"] = core.md5_base64(b) }, b), 400, "MalformedXML")
      end
      local parts = { "<Delete>" }
      for i = 1, 1001 do parts[#parts + 1] = "<Object><Key>k" .. i .. "</Key></Object>" end
      parts[#parts + 1] = "</Delete>"
      body = table.concat(parts)
      check_error(call(s, "POST", "/bkt?delete", { ["content-md5"] = core.md5_base64(body) }, body), 400, "MalformedXML")
    end)
  end)

  describe("CopyObject", function()
    before_each(function()
      assert.equal(200, call(s, "PUT", "/bkt").status)
      put("src%20key", "payload", { ["content-type"] = "text/x", ["x-amz-meta-a"] = "1" })
    end)

    it("copies data and metadata (COPY)", function()
      local res = call(s, "PUT", "/bkt/dst", { ["x-amz-copy-source"] = "/bkt/src%20key" })
      assert.equal(200, res.status, res.body)
      local node, root = xml(res)
      assert.equal("CopyObjectResult", root)
      assert.equal(md5q("payload"), node.ETag)
      assert.equal("2023-11-14T22:13:20.250Z", node.LastModified)
      res = call(s, "GET", "/bkt/dst")
      assert.equal("payload", res.body)
      assert.equal("text/x", res.headers["content-type"])
      assert.equal("1", res.headers["x-amz-meta-a"])
      -- without the leading slash too
      assert.equal(200, call(s, "PUT", "/bkt/dst2", { ["x-amz-copy-source"] = "bkt/src%20key" }).status)
    end)

    it("replaces metadata (REPLACE) and may then copy onto itself", function()
      local res = call(s, "PUT", "/bkt/dst", { ["x-amz-copy-source"] = "bkt/src%20key",
        ["x-amz-metadata-directive"] = "REPLACE", ["content-type"] = "text/y", ["x-amz-meta-b"] = "2" })
      assert.equal(200, res.status)
      res = call(s, "HEAD", "/bkt/dst")
      assert.equal("text/y", res.headers["content-type"])
      assert.equal("2", res.headers["x-amz-meta-b"])
      assert.is_nil(res.headers["x-amz-meta-a"])
      check_error(call(s, "PUT", "/bkt/src%20key", { ["x-amz-copy-source"] = "bkt/src%20key" }), 400, "InvalidRequest")
      assert.equal(200, call(s, "PUT", "/bkt/src%20key", { ["x-amz-copy-source"] = "bkt/src%20key",
        ["x-amz-metadata-directive"] = "REPLACE", ["x-amz-meta-c"] = "3" }).status)
      assert.equal("3", call(s, "HEAD", "/bkt/src%20key").headers["x-amz-meta-c"])
      assert.equal("payload", call(s, "GET", "/bkt/src%20key").body)
    end)

    it("answers copy errors", function()
      check_error(call(s, "PUT", "/bkt/d", { ["x-amz-copy-source"] = "bkt/nope" }), 404, "NoSuchKey")
      check_error(call(s, "PUT", "/bkt/d", { ["x-amz-copy-source"] = "nob/x" }), 404, "NoSuchBucket")
      check_error(call(s, "PUT", "/bkt/d", { ["x-amz-copy-source"] = "justbucket" }), 400, "InvalidArgument")
      check_error(call(s, "PUT", "/bkt/d", { ["x-amz-copy-source"] = "bkt/src%20key",
        ["x-amz-metadata-directive"] = "MOVE" }), 400, "InvalidArgument")
      check_error(call(s, "PUT", "/bkt/d", { ["x-amz-copy-source"] = "bkt/src%20key",
        ["x-amz-copy-source-if-match"] = '"nope"' }), 412, "PreconditionFailed")
      check_error(call(s, "PUT", "/bkt/d", { ["x-amz-copy-source"] = "bkt/src%20key",
        ["x-amz-copy-source-if-none-match"] = md5q("payload") }), 412, "PreconditionFailed")
      assert.equal(200, call(s, "PUT", "/bkt/d", { ["x-amz-copy-source"] = "bkt/src%20key",
        ["x-amz-copy-source-if-match"] = md5q("payload") }).status)
      check_error(call(s, "PUT", "/nob/d", { ["x-amz-copy-source"] = "bkt/src%20key" }), 404, "NoSuchBucket")
    end)
  end)

  describe("listing", function()
    before_each(function() assert.equal(200, call(s, "PUT", "/bkt").status) end)

    local function list(q)
      local res = call(s, "GET", "/bkt?" .. q)
      assert.equal(200, res.status, res.body)
      local node, root = xml(res)
      assert.equal("ListBucketResult", root)
      return node
    end

    it("sorts keys in UTF-8 binary order", function()
      for _, k in ipairs { "%C3%A9", "z", "B", "a", "~", "a0", "A" } do put(k, "x") end
      assert.same({ "A", "B", "a", "a0", "z", "~", "é" }, keys_of(list("list-type=2")))
    end)

    it("ListObjectsV2: prefix, delimiter, common prefixes, KeyCount", function()
      for _, k in ipairs { "a.txt", "photos/2020/jan.jpg", "photos/2020/feb.jpg", "photos/2021/mar.jpg",
        "photos/top.jpg", "videos/v.mp4", "z" } do put(k, "x") end
      local node = list("list-type=2&delimiter=%2F")
      assert.same({ "a.txt", "z" }, keys_of(node))
      assert.same({ "photos/", "videos/" }, prefixes_of(node))
      assert.equal("4", node.KeyCount)
      assert.equal("false", node.IsTruncated)
      assert.equal("/", node.Delimiter)
      assert.equal("1000", node.MaxKeys)
      node = list("list-type=2&prefix=photos%2F&delimiter=%2F")
      assert.same({ "photos/top.jpg" }, keys_of(node))
      assert.same({ "photos/2020/", "photos/2021/" }, prefixes_of(node))
      assert.equal("photos/", node.Prefix)
      node = list("list-type=2&prefix=photos%2F2020")
      assert.same({ "photos/2020/feb.jpg", "photos/2020/jan.jpg" }, keys_of(node))
      local c = all(node, "Contents")[1]
      assert.equal(md5q("x"), c.ETag)
      assert.equal("1", c.Size)
      assert.equal("STANDARD", c.StorageClass)
      assert.equal("2023-11-14T22:13:20.250Z", c.LastModified)
      assert.is_nil(c.Owner)
      assert.is_table(all(list("list-type=2&fetch-owner=true"), "Contents")[1].Owner)
      node = list("list-type=2&delimiter=")
      assert.equal(7, #keys_of(node))
      assert.is_nil(node.Delimiter)
      node = list("list-type=2&prefix=nothing")
      assert.equal("0", node.KeyCount)
      assert.same({}, keys_of(node))
    end)

    it("ListObjectsV2: pages with continuation tokens, common prefixes counted once", function()
      local want = {}
      for i = 1, 25 do
        local k = string.format("k%02d", i)
        put(k, "x")
        want[#want + 1] = k
      end
      for i = 1, 3 do put("dir/" .. i, "x") end -- one common prefix across pages
      local seen, token, pages = {}, nil, 0
      repeat
        local node = list("list-type=2&delimiter=%2F&max-keys=4" .. (token and "&continuation-token=" .. token or ""))
        pages = pages + 1
        for _, k in ipairs(keys_of(node)) do seen[#seen + 1] = k end
        for _, p in ipairs(prefixes_of(node)) do seen[#seen + 1] = p end
        local count = #keys_of(node) + #prefixes_of(node)
        assert.equal(tostring(count), node.KeyCount)
        if node.IsTruncated == "true" then
          assert.equal(4, count)
          token = core.uri_encode(node.NextContinuationToken)
          assert.is_string(node.NextContinuationToken)
        else
          token = nil
        end
      until not token
      assert.equal(7, pages) -- 26 entries, 4 a page
      table.insert(want, 1, "dir/")
      table.sort(seen) -- a page lists its keys, then its common prefixes
      assert.same(want, seen)
    end)

    it("ListObjectsV2: start-after, max-keys=0, errors", function()
      for _, k in ipairs { "a", "b", "c", "d" } do put(k, "x") end
      local node = list("list-type=2&start-after=b")
      assert.same({ "c", "d" }, keys_of(node))
      assert.equal("b", node.StartAfter)
      node = list("list-type=2&start-after=bb&max-keys=1")
      assert.same({ "c" }, keys_of(node))
      assert.equal("true", node.IsTruncated)
      node = list("list-type=2&max-keys=0")
      assert.same({}, keys_of(node))
      check_error(call(s, "GET", "/bkt?list-type=2&continuation-token=garbage"), 400, "InvalidArgument")
      check_error(call(s, "GET", "/bkt?list-type=2&max-keys=-1"), 400, "InvalidArgument")
      check_error(call(s, "GET", "/bkt?list-type=2&max-keys=ten"), 400, "InvalidArgument")
      check_error(call(s, "GET", "/bkt?list-type=2&encoding-type=base64"), 400, "InvalidArgument")
      check_error(call(s, "GET", "/bkt?list-type=3"), 400, "InvalidArgument")
    end)

    it("encoding-type=url percent-encodes keys and prefixes", function()
      put("a%20b%26c%3Cd", "x")
      put("p%C3%A9%2Fq", "x")
      local node = list("list-type=2&encoding-type=url&delimiter=%2F")
      assert.equal("url", node.EncodingType)
      assert.same({ "a+b%26c%3Cd" }, keys_of(node))
      assert.same({ "p%C3%A9/" }, prefixes_of(node))
      assert.equal("%2F", node.Delimiter:gsub("/", "%%2F"))
    end)

    it("ListObjects (v1): Marker, NextMarker with a delimiter, Owner", function()
      for _, k in ipairs { "a", "b/1", "b/2", "c", "d" } do put(k, "x") end
      local node = list("marker=a&max-keys=2")
      assert.same({ "b/1", "b/2" }, keys_of(node))
      assert.equal("a", node.Marker)
      assert.equal("true", node.IsTruncated)
      assert.is_nil(node.NextMarker) -- only with a delimiter (ListObjects)
      assert.is_table(all(node, "Contents")[1].Owner)
      node = list("delimiter=%2F&max-keys=2")
      assert.same({ "a" }, keys_of(node))
      assert.same({ "b/" }, prefixes_of(node))
      assert.equal("b/", node.NextMarker)
      node = list("delimiter=%2F&max-keys=2&marker=b%2F")
      assert.same({ "c", "d" }, keys_of(node))
      assert.equal("false", node.IsTruncated)
    end)

    it("lists 10,000 keys in pages of 1,000", function()
      local b = s.disk:bucket("bkt")
      for i = 1, 10000 do
        -- through the handler for a tenth, the rest straight to disk (the
        -- same commit path) to keep the spec quick
        if i % 10 == 0 then
          put(string.format("key/%05d", i), "x")
        else
          local tmp = s.disk:tmp_path()
          local f = assert(io.open(tmp, "wb")); f:write("x"); f:close()
          assert(s.disk:put_object("bkt", string.format("key/%05d", i), tmp,
            { size = 1, etag = md5q("x"), mtime = NOW, content_type = "binary/octet-stream", metadata = {} }))
        end
      end
      assert.equal(10000, #b.keys)
      local token, n, last = nil, 0, ""
      repeat
        local node = list("list-type=2" .. (token and "&continuation-token=" .. core.uri_encode(token) or ""))
        for _, k in ipairs(keys_of(node)) do
          n = n + 1
          assert.is_true(k > last)
          last = k
        end
        token = node.NextContinuationToken
      until not token
      assert.equal(10000, n)
      local node = list("list-type=2&prefix=key%2F0999")
      assert.equal("10", node.KeyCount)
      -- and after a restart
      local s2 = new(dir)
      assert.equal(10000, #s2.disk:bucket("bkt").keys)
    end)
  end)

  describe("multipart upload", function()
    local p1, p2
    before_each(function()
      assert.equal(200, call(s, "PUT", "/bkt").status)
      p1 = ("a"):rep(5 * MiB)
      p2 = "tail"
    end)

    local function create(key, headers)
      local res = call(s, "POST", "/bkt/" .. key .. "?uploads", headers)
      assert.equal(200, res.status, res.body)
      local node, root = xml(res)
      assert.equal("InitiateMultipartUploadResult", root)
      assert.equal("bkt", node.Bucket)
      return node.UploadId
    end

    local function upload(key, id, n, data)
      local res = call(s, "PUT", "/bkt/" .. key .. "?partNumber=" .. n .. "&uploadId=" .. id, {}, data)
      assert.equal(200, res.status, res.body)
      return res.headers.etag
    end

    local function complete_body(parts)
      local out = { "<CompleteMultipartUpload>" }
      for _, p in ipairs(parts) do
        out[#out + 1] = "<Part><PartNumber>" .. p[1] .. "</PartNumber><ETag>" .. p[2] .. "</ETag></Part>"
      end
      out[#out + 1] = "</CompleteMultipartUpload>"
      return table.concat(out)
    end

    local function complete(key, id, parts)
      return call(s, "POST", "/bkt/" .. key .. "?uploadId=" .. id, {}, complete_body(parts))
    end

    it("uploads, lists and completes with the multipart ETag", function()
      local id = create("big%20file", { ["content-type"] = "video/mp4", ["x-amz-meta-k"] = "v" })
      local e1 = upload("big%20file", id, 1, p1)
      local e2 = upload("big%20file", id, 2, p2)
      assert.equal(md5q(p1), e1)
      assert.equal(md5q(p2), e2)
      -- ListParts
      local node, root = xml(call(s, "GET", "/bkt/big%20file?uploadId=" .. id))
      assert.equal("ListPartsResult", root)
      assert.equal(id, node.UploadId)
      local parts = all(node, "Part")
      assert.equal(2, #parts)
      assert.equal("1", parts[1].PartNumber)
      assert.equal(tostring(5 * MiB), parts[1].Size)
      assert.equal(e2, parts[2].ETag)
      node = xml(call(s, "GET", "/bkt/big%20file?uploadId=" .. id .. "&max-parts=1"))
      assert.equal("true", node.IsTruncated)
      assert.equal("1", node.NextPartNumberMarker)
      node = xml(call(s, "GET", "/bkt/big%20file?uploadId=" .. id .. "&part-number-marker=1"))
      assert.equal("2", all(node, "Part")[1].PartNumber)
      -- ListMultipartUploads
      node, root = xml(call(s, "GET", "/bkt?uploads"))
      assert.equal("ListMultipartUploadsResult", root)
      local up = all(node, "Upload")[1]
      assert.equal("big file", up.Key)
      assert.equal(id, up.UploadId)
      assert.equal("2023-11-14T22:13:20.250Z", up.Initiated)
      -- complete: ETag = MD5(MD5(p1) .. MD5(p2)) .. "-2" (binary digests)
      local res = complete("big%20file", id, { { 1, e1 }, { 2, e2 } })
      assert.equal(200, res.status, res.body)
      node, root = xml(res)
      assert.equal("CompleteMultipartUploadResult", root)
      local want = '"' .. core.md5_hex(core.md5(p1) .. core.md5(p2)) .. '-2"'
      assert.equal(want, node.ETag)
      assert.equal("big file", node.Key)
      assert.equal("http://127.0.0.1:4566/bkt/big%20file", node.Location)
      res = call(s, "GET", "/bkt/big%20file")
      assert.equal(want, res.headers.etag)
      assert.equal("video/mp4", res.headers["content-type"])
      assert.equal("v", res.headers["x-amz-meta-k"])
      assert.equal(5 * MiB + 4, res.body_length)
      assert.equal(p1 .. p2, body_of(res))
      -- the upload is gone
      check_error(call(s, "GET", "/bkt/big%20file?uploadId=" .. id), 404, "NoSuchUpload")
      assert.same({}, all(xml(call(s, "GET", "/bkt?uploads")), "Upload"))
    end)

    it("takes parts without quotes and a re-uploaded part replaces the old one", function()
      local id = create("k")
      upload("k", id, 1, "old")
      local e1 = upload("k", id, 1, "new")
      -- a part with a flexible checksum: checked and echoed (UploadPart)
      local res = call(s, "PUT", "/bkt/k?partNumber=2&uploadId=" .. id, { ["x-amz-checksum-crc32"] = "NhCmhg==" }, "hello")
      assert.equal(200, res.status, res.body)
      assert.equal("NhCmhg==", res.headers["x-amz-checksum-crc32"])
      check_error(call(s, "PUT", "/bkt/k?partNumber=2&uploadId=" .. id, { ["x-amz-checksum-crc32"] = "NhCmhg==" },
        "hellO"), 400, "BadDigest")
      res = complete("k", id, { { 1, e1:gsub('"', "") } })
      assert.equal(200, res.status, res.body)
      assert.equal("new", call(s, "GET", "/bkt/k").body)
      assert.equal('"' .. core.md5_hex(core.md5("new")) .. '-1"', xml(res).ETag)
    end)

    it("answers EntityTooSmall, InvalidPart, InvalidPartOrder and MalformedXML", function()
      local id = create("k")
      local e1 = upload("k", id, 1, "small")
      local e2 = upload("k", id, 2, "tail")
      local e = check_error(complete("k", id, { { 1, e1 }, { 2, e2 } }), 400, "EntityTooSmall")
      assert.equal("5", e.ProposedSize)
      assert.equal(tostring(5 * MiB), e.MinSizeAllowed)
      check_error(complete("k", id, { { 1, '"00000000000000000000000000000000"' } }), 400, "InvalidPart")
      check_error(complete("k", id, { { 3, e2 } }), 400, "InvalidPart")
      check_error(complete("k", id, { { 2, e2 }, { 1, e1 } }), 400, "InvalidPartOrder")
      check_error(complete("k", id, { { 1, e1 }, { 1, e1 } }), 400, "InvalidPartOrder")
      check_error(complete("k", id, {}), 400, "MalformedXML")
      check_error(call(s, "POST", "/bkt/k?uploadId=" .. id, {}, "<CompleteMultipartUpload><Part>"), 400, "MalformedXML")
      check_error(call(s, "POST", "/bkt/k?uploadId=" .. id, {},
        "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>"),
        400, "MalformedXML")
      -- nothing was completed; the last part alone may be small
      assert.equal(404, call(s, "GET", "/bkt/k").status)
      assert.equal(200, complete("k", id, { { 2, e2 } }).status)
    end)

    it("completes conditionally (If-None-Match *)", function()
      put("exists", "old")
      local id = create("exists")
      local e1 = upload("exists", id, 1, "new")
      local body = complete_body({ { 1, e1 } })
      check_error(call(s, "POST", "/bkt/exists?uploadId=" .. id, { ["if-none-match"] = "*" }, body), 412,
        "PreconditionFailed")
      assert.equal("old", call(s, "GET", "/bkt/exists").body)
      assert.equal(200, call(s, "POST", "/bkt/exists?uploadId=" .. id, { ["if-match"] = md5q("old") }, body).status)
      assert.equal("new", call(s, "GET", "/bkt/exists").body)
    end)

    it("aborts, and answers NoSuchUpload and bad part numbers", function()
      local id = create("k")
      upload("k", id, 1, "x")
      check_error(call(s, "PUT", "/bkt/k?partNumber=0&uploadId=" .. id, {}, "x"), 400, "InvalidArgument")
      check_error(call(s, "PUT", "/bkt/k?partNumber=10001&uploadId=" .. id, {}, "x"), 400, "InvalidArgument")
      check_error(call(s, "PUT", "/bkt/other?partNumber=1&uploadId=" .. id, {}, "x"), 404, "NoSuchUpload")
      assert.equal(204, call(s, "DELETE", "/bkt/k?uploadId=" .. id).status)
      local e = check_error(call(s, "DELETE", "/bkt/k?uploadId=" .. id), 404, "NoSuchUpload")
      assert.equal(id, e.UploadId)
      check_error(call(s, "PUT", "/bkt/k?partNumber=1&uploadId=" .. id, {}, "x"), 404, "NoSuchUpload")
      check_error(complete("k", id, { { 1, md5q("x") } }), 404, "NoSuchUpload")
      check_error(call(s, "GET", "/bkt/k?uploadId=nope"), 404, "NoSuchUpload")
      check_error(call(s, "POST", "/nob/k?uploads"), 404, "NoSuchBucket")
    end)

    it("lists uploads with prefix, delimiter and max-uploads", function()
      local ids = {}
      for _, k in ipairs { "a/1", "a/2", "b", "c" } do ids[k] = create(k) end
      local node = xml(call(s, "GET", "/bkt?uploads&prefix=a%2F"))
      assert.equal(2, #all(node, "Upload"))
      node = xml(call(s, "GET", "/bkt?uploads&delimiter=%2F"))
      local keys = {}
      for i, u in ipairs(all(node, "Upload")) do keys[i] = u.Key end
      assert.same({ "b", "c" }, keys)
      assert.same({ "a/" }, prefixes_of(node))
      node = xml(call(s, "GET", "/bkt?uploads&max-uploads=2"))
      assert.equal("true", node.IsTruncated)
      assert.equal("a/2", node.NextKeyMarker)
      assert.equal(ids["a/2"], node.NextUploadIdMarker)
      node = xml(call(s, "GET", "/bkt?uploads&key-marker=a%2F2"))
      keys = {}
      for i, u in ipairs(all(node, "Upload")) do keys[i] = u.Key end
      assert.same({ "b", "c" }, keys)
    end)

    it("copies a part from an object (UploadPartCopy) with a range", function()
      put("src", "0123456789")
      local id = create("k")
      local res = call(s, "PUT", "/bkt/k?partNumber=1&uploadId=" .. id, { ["x-amz-copy-source"] = "bkt/src",
        ["x-amz-copy-source-range"] = "bytes=2-5" })
      assert.equal(200, res.status, res.body)
      local node, root = xml(res)
      assert.equal("CopyPartResult", root)
      assert.equal(md5q("2345"), node.ETag)
      assert.equal(200, complete("k", id, { { 1, node.ETag } }).status)
      assert.equal("2345", call(s, "GET", "/bkt/k").body)
    end)
  end)

  describe("aws-chunked uploads", function()
    before_each(function() assert.equal(200, call(s, "PUT", "/examplebucket").status) end)

    -- The example of "Signature Calculations for the Authorization Header:
    -- Transferring Payload in Multiple Chunks" (sigv4-streaming.html):
    -- 66560 bytes of "a" in chunks of 65536, 1024 and 0 bytes, with the
    -- seed and chunk signatures printed there.
    local SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    local SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    local SIGS = { "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
      "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
      "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9" }
    local AUTH = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
      .. "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
      .. "x-amz-decoded-content-length;x-amz-storage-class,Signature=" .. SEED

    local function doc_body(sigs, data2)
      return "10000;chunk-signature=" .. sigs[1] .. "\r\n" .. ("a"):rep(65536) .. "\r\n"
        .. "400;chunk-signature=" .. sigs[2] .. "\r\n" .. (data2 or ("a"):rep(1024)) .. "\r\n"
        .. "0;chunk-signature=" .. sigs[3] .. "\r\n\r\n"
    end

    local function headers(decoded)
      return { authorization = AUTH, ["x-amz-date"] = "20130524T000000Z", ["content-encoding"] = "aws-chunked",
        ["x-amz-content-sha256"] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        ["x-amz-decoded-content-length"] = tostring(decoded or 66560), ["x-amz-storage-class"] = "REDUCED_REDUNDANCY" }
    end

    it("accepts the AWS documentation example, every chunk signature checked", function()
      local doc = new(dir, { secret_key = SECRET, access_key = "AKIAIOSFODNN7EXAMPLE" })
      local res = call(doc, "PUT", "/examplebucket/chunkObject.txt", headers(), doc_body(SIGS))
      assert.equal(200, res.status, res.body)
      assert.equal(md5q(("a"):rep(66560)), res.headers.etag)
      res = call(doc, "GET", "/examplebucket/chunkObject.txt")
      assert.equal(66560, #body_of(res))
      assert.is_nil(res.headers["content-encoding"]) -- aws-chunked is framing, not stored
      assert.equal("REDUCED_REDUNDANCY", res.headers["x-amz-storage-class"])
      -- the same through the router's info fields and from a spooled file
      local spool = os.tmpname()
      local f = assert(io.open(spool, "wb")); f:write(doc_body(SIGS)); f:close()
      res = call(doc, "PUT", "/examplebucket/c2", { ["x-amz-content-sha256"] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        ["x-amz-decoded-content-length"] = "66560" }, { file = spool },
        { seed_signature = SEED, region = "us-east-1", amz_date = "20130524T000000Z", secret_key = SECRET })
      os.remove(spool)
      assert.equal(200, res.status, res.body)
      assert.equal(("a"):rep(66560), body_of(call(doc, "GET", "/examplebucket/c2")))
    end)

    it("rejects a wrong chunk signature, altered data or a wrong secret", function()
      local doc = new(dir, { secret_key = SECRET })
      local bad = { SIGS[1], SIGS[2]:gsub("^0", "1"), SIGS[3] }
      check_error(call(doc, "PUT", "/examplebucket/x", headers(), doc_body(bad)), 403, "SignatureDoesNotMatch")
      check_error(call(doc, "PUT", "/examplebucket/x", headers(), doc_body(SIGS, ("b"):rep(1024))), 403,
        "SignatureDoesNotMatch")
      local other = new(dir, { secret_key = "another secret" })
      check_error(call(other, "PUT", "/examplebucket/x", headers(), doc_body(SIGS)), 403, "SignatureDoesNotMatch")
      check_error(call(doc, "GET", "/examplebucket/x"), 404, "NoSuchKey")
      -- no signature verification without auth (aio-aws local --no-auth)
      local noauth = new(dir, { no_auth = true })
      assert.equal(200, call(noauth, "PUT", "/examplebucket/x", headers(), doc_body(bad)).status)
    end)

    it("rejects truncated or mis-framed bodies and a wrong decoded length", function()
      local doc = new(dir, { secret_key = SECRET })
      local body = doc_body(SIGS)
      check_error(call(doc, "PUT", "/examplebucket/x", headers(), body:sub(1, 66000)), 400, "IncompleteBody")
      -- without the final empty chunk
      check_error(call(doc, "PUT", "/examplebucket/x", headers(), body:sub(1, #body - 86)), 400, "IncompleteBody")
      check_error(call(doc, "PUT", "/examplebucket/x", headers(), "zz;chunk-signature=1\r\n"), 400, "IncompleteBody")
      check_error(call(doc, "PUT", "/examplebucket/x", headers(66561), body), 400, "IncompleteBody")
      check_error(call(doc, "PUT", "/examplebucket/x", headers(100), body), 400, "IncompleteBody")
      local h = headers()
      h["x-amz-decoded-content-length"] = nil
      check_error(call(doc, "PUT", "/examplebucket/x", h, body), 411, "MissingContentLength")
    end)

    it("verifies a chained upload signed by aio_aws.sigv4", function()
      local creds = { access_key = "AK", secret_key = "sk" }
      local data = ("xyz"):rep(10000)
      local hdr = sigv4.streaming_headers(#data, 8192)
      hdr["x-amz-content-sha256"] = sigv4.STREAMING_PAYLOAD
      local signed, dbg = sigv4.sign({ method = "PUT", url = "http://127.0.0.1/examplebucket/obj", headers = hdr,
        payload_hash = sigv4.STREAMING_PAYLOAD }, creds, { region = "eu-west-1", service = "s3" })
      local c = sigv4.chunked(creds, { region = "eu-west-1", service = "s3" }, dbg)
      local frames = {}
      for i = 1, #data, 8192 do frames[#frames + 1] = c:frame(data:sub(i, i + 8191)) end
      frames[#frames + 1] = c:frame("")
      local svc = new(dir, { secret_key = "sk" })
      local res = call(svc, "PUT", "/examplebucket/obj", signed.headers, table.concat(frames))
      assert.equal(200, res.status, res.body)
      assert.equal(data, call(svc, "GET", "/examplebucket/obj").body)
    end)

    it("accepts STREAMING-UNSIGNED-PAYLOAD-TRAILER bodies with trailers", function()
      -- CRC32("hello") = 0x3610a686, base64 "NhCmhg=="
      local body = "5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"
      local h = { ["x-amz-content-sha256"] = "STREAMING-UNSIGNED-PAYLOAD-TRAILER", ["x-amz-trailer"] = "x-amz-checksum-crc32",
        ["x-amz-decoded-content-length"] = "5", ["content-encoding"] = "aws-chunked" }
      local res = call(s, "PUT", "/examplebucket/t", h, body)
      assert.equal(200, res.status, res.body)
      assert.equal("NhCmhg==", res.headers["x-amz-checksum-crc32"])
      assert.equal("hello", call(s, "GET", "/examplebucket/t").body)
      check_error(call(s, "PUT", "/examplebucket/t2", h, (body:gsub("NhCmhg", "AAAAAA"))), 400, "BadDigest")
      check_error(call(s, "PUT", "/examplebucket/t2", h, "5\r\nhello\r\n0\r\n\r\n"), 400, "InvalidRequest")
      check_error(call(s, "GET", "/examplebucket/t2"), 404, "NoSuchKey")
    end)
  end)

  describe("persistence", function()
    it("sees buckets, objects, metadata and uploads after a restart", function()
      assert.equal(200, call(s, "PUT", "/bkt").status)
      put("keep", "kept", { ["x-amz-meta-a"] = "b", ["content-type"] = "text/plain" })
      put("gone", "x")
      put("over", "v1")
      put("over", "v2")
      assert.equal(204, call(s, "DELETE", "/bkt/gone").status)
      local id = xml(call(s, "POST", "/bkt/mp?uploads")).UploadId
      assert.equal(200, call(s, "PUT", "/bkt/mp?partNumber=1&uploadId=" .. id, {}, "part").status)
      s:close()
      local s2 = new(dir)
      assert.same({ "keep", "over" }, keys_of(xml(call(s2, "GET", "/bkt?list-type=2"))))
      local res = call(s2, "GET", "/bkt/keep")
      assert.equal("kept", res.body)
      assert.equal("b", res.headers["x-amz-meta-a"])
      assert.equal("text/plain", res.headers["content-type"])
      assert.equal("v2", call(s2, "GET", "/bkt/over").body)
      local parts = all(xml(call(s2, "GET", "/bkt/mp?uploadId=" .. id)), "Part")
      assert.equal(md5q("part"), parts[1].ETag)
      assert.equal(200, call(s2, "POST", "/bkt/mp?uploadId=" .. id, {},
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>" .. md5q("part")
        .. "</ETag></Part></CompleteMultipartUpload>").status)
      assert.equal("part", new(dir):handle(request("GET", "/bkt/mp")).body)
    end)

    it("ignores a torn journal line and leaves no temporary files", function()
      assert.equal(200, call(s, "PUT", "/bkt").status)
      put("a", "1")
      local f = assert(io.open(dir .. "/index.log", "ab"))
      f:write("+ 626b74 6")
      f:close()
      local s2 = new(dir)
      assert.same({ "a" }, keys_of(xml(call(s2, "GET", "/bkt?list-type=2"))))
      assert.equal(200, call(s2, "PUT", "/bkt/b", {}, "2").status)
      assert.same({ "a", "b" }, keys_of(xml(call(new(dir), "GET", "/bkt?list-type=2"))))
      assert.same({}, store.list_dir(dir .. "/tmp"))
    end)

    it("drops files of interrupted writes on start", function()
      assert.equal(200, call(s, "PUT", "/bkt").status)
      put("live", "kept")
      local id = xml(call(s, "POST", "/bkt/mp?uploads")).UploadId
      assert.equal(200, call(s, "PUT", "/bkt/mp?partNumber=1&uploadId=" .. id, {}, "part").status)
      local objects = store.list_dir(dir .. "/objects")
      local uploads = store.list_dir(dir .. "/uploads")
      for _, p in ipairs { "/tmp/half-written", "/objects/0123abcd.json", "/objects/0123abcd.5f00",
        "/uploads/feed.1.99" } do
        local f = assert(io.open(dir .. p, "wb"))
        f:write("partial")
        f:close()
      end
      local s2 = new(dir)
      assert.same({}, store.list_dir(dir .. "/tmp"))
      assert.same(objects, store.list_dir(dir .. "/objects"))
      assert.same(uploads, store.list_dir(dir .. "/uploads"))
      assert.equal("kept", call(s2, "GET", "/bkt/live").body)
      assert.equal(1, #all(xml(call(s2, "GET", "/bkt/mp?uploadId=" .. id)), "Part"))
    end)

    it("a failed upload leaves the old object whole", function()
      assert.equal(200, call(s, "PUT", "/bkt").status)
      put("k", "original")
      check_error(call(s, "PUT", "/bkt/k", { ["content-md5"] = core.md5_base64("other") }, "changed"), 400, "BadDigest")
      assert.equal("original", call(s, "GET", "/bkt/k").body)
      assert.same({}, store.list_dir(dir .. "/tmp"))
    end)
  end)
end)

-- Through a real endpoint on loopback (aio_aws.emulator: HTTP server,
-- router, SigV4 checks) with the project's own client.
describe("emulator s3 (live, through the endpoint)", function()
  local aws = require "aio_aws"
  local http = require "aio_aws.http"
  local run = require "support.run"
  local emulator = require "aio_aws.emulator"
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() rm_rf(dir) end)

  local function client(em, opts)
    local session = assert(aws.session{ region = "us-east-1",
      credentials = { access_key = em.access_key, secret_key = em.secret_key } })
    local o = { endpoint_url = em.url, retries = { max_attempts = 1 } }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(session:client("s3", o))
  end

  local function with_s3(fn)
    return run(function()
      local em = assert(emulator.start{ data_dir = dir, port = 0 })
      local ok, err = pcall(fn, client(em), em)
      em:close()
      if not ok then error(err, 0) end
    end)
  end

  -- a raw request signed with the endpoint's key pair
  local function signed(em, method, target, body)
    local url = em.url .. target
    local sig = sigv4.sign({ method = method, url = url, headers = {}, body = body or "" },
      { access_key = em.access_key, secret_key = em.secret_key }, { region = "us-east-1", service = "s3" })
    return assert(http.request{ method = method, url = sig.url, headers = sig.headers, body = body, timeout = 10 })
  end

  local function fails(code, status, out, err)
    assert.is_nil(out)
    assert.is_table(err)
    assert.equal(code, err.code, tostring(err))
    assert.equal(status, err.status)
    assert.is_string(err.request_id)
    return err
  end

  it("buckets: create, head, list, location, delete and their errors", function()
    with_s3(function(s3, em)
      assert(s3:create_bucket{ Bucket = "bkt" })
      assert(s3:create_bucket{ Bucket = "eub", CreateBucketConfiguration = { LocationConstraint = "eu-west-1" } })
      local out = assert(s3:list_buckets{})
      assert.equal(2, #out.Buckets)
      assert.equal("bkt", out.Buckets[1].Name)
      assert.is_number(out.Buckets[1].CreationDate)
      assert.is_string(out.Owner.ID)
      out = assert(s3:head_bucket{ Bucket = "eub" })
      assert.equal("eu-west-1", out.ResponseMetadata.HTTPHeaders["x-amz-bucket-region"])
      -- GetBucketLocation's root element is the value itself: botocore
      -- needs a handler for it (parse_get_bucket_location) that aio_aws's
      -- client lacks, so the body is read here through a signed request
      assert(s3:get_bucket_location{ Bucket = "eub" })
      local res = signed(em, "GET", "/eub?location")
      assert.equal(200, res.status)
      assert.matches(">eu%-west%-1</LocationConstraint>$", res.body)
      fails("BucketAlreadyOwnedByYou", 409, s3:create_bucket{ Bucket = "eub",
        CreateBucketConfiguration = { LocationConstraint = "eu-west-1" } })
      fails("InvalidBucketName", 400, s3:create_bucket{ Bucket = "Bad_Name" })
      fails("NoSuchBucket", 404, s3:delete_bucket{ Bucket = "nob" })
      fails("NoSuchBucket", 404, s3:get_bucket_location{ Bucket = "nob" })
      -- HEAD errors have no body: the client reports the status (as botocore: "404")
      fails("404", 404, s3:head_bucket{ Bucket = "nob" })
      assert(s3:put_object{ Bucket = "bkt", Key = "k", Body = "x" })
      fails("BucketNotEmpty", 409, s3:delete_bucket{ Bucket = "bkt" })
      assert(s3:delete_object{ Bucket = "bkt", Key = "k" })
      assert.equal(204, assert(s3:delete_bucket{ Bucket = "bkt" }).ResponseMetadata.HTTPStatusCode)
      assert.equal(1, #assert(s3:list_buckets{}).Buckets)
    end)
  end)

  it("objects: put, get, head, ranges, conditionals, delete and their errors", function()
    with_s3(function(s3)
      assert(s3:create_bucket{ Bucket = "bkt" })
      local out = assert(s3:put_object{ Bucket = "bkt", Key = "dir/a b+é.txt", Body = "hello world",
        ContentType = "text/plain", Metadata = { owner = "me" }, CacheControl = "max-age=60" })
      assert.equal('"5eb63bbbe01eeed093cb22bb8f5acdc3"', out.ETag) -- MD5("hello world")
      local obj = assert(s3:get_object{ Bucket = "bkt", Key = "dir/a b+é.txt" })
      assert.equal("hello world", obj.Body:read_all())
      assert.equal("text/plain", obj.ContentType)
      assert.equal(11, obj.ContentLength)
      assert.equal("me", obj.Metadata.owner)
      assert.equal("max-age=60", obj.CacheControl)
      assert.is_number(obj.LastModified)
      local head = assert(s3:head_object{ Bucket = "bkt", Key = "dir/a b+é.txt" })
      assert.equal(11, head.ContentLength)
      assert.equal(out.ETag, head.ETag)
      obj = assert(s3:get_object{ Bucket = "bkt", Key = "dir/a b+é.txt", Range = "bytes=6-" })
      assert.equal("world", obj.Body:read_all())
      assert.equal("bytes 6-10/11", obj.ContentRange)
      assert.equal(206, obj.ResponseMetadata.HTTPStatusCode)
      fails("InvalidRange", 416, s3:get_object{ Bucket = "bkt", Key = "dir/a b+é.txt", Range = "bytes=20-" })
      fails("PreconditionFailed", 412, s3:get_object{ Bucket = "bkt", Key = "dir/a b+é.txt", IfMatch = '"x"' })
      fails("304", 304, s3:get_object{ Bucket = "bkt", Key = "dir/a b+é.txt", IfNoneMatch = out.ETag })
      fails("304", 304, s3:get_object{ Bucket = "bkt", Key = "dir/a b+é.txt", IfModifiedSince = head.LastModified })
      assert(s3:get_object{ Bucket = "bkt", Key = "dir/a b+é.txt", IfModifiedSince = head.LastModified - 10 })
      fails("PreconditionFailed", 412, s3:get_object{ Bucket = "bkt", Key = "dir/a b+é.txt",
        IfUnmodifiedSince = head.LastModified - 10 })
      fails("NoSuchKey", 404, s3:get_object{ Bucket = "bkt", Key = "missing" })
      fails("404", 404, s3:head_object{ Bucket = "bkt", Key = "missing" })
      fails("NoSuchBucket", 404, s3:put_object{ Bucket = "nob", Key = "k", Body = "x" })
      assert(s3:delete_object{ Bucket = "bkt", Key = "dir/a b+é.txt" })
      fails("NoSuchKey", 404, s3:get_object{ Bucket = "bkt", Key = "dir/a b+é.txt" })
    end)
  end)

  it("large objects go through spooled files both ways", function()
    with_s3(function(s3)
      assert(s3:create_bucket{ Bucket = "bkt" })
      local parts = {}
      for i = 1, 3 * 65536 do parts[i] = string.format("%07d\n", i) end
      local data = table.concat(parts) -- 1.5 MiB, over the server's spool threshold
      assert(s3:put_object{ Bucket = "bkt", Key = "big", Body = data })
      local obj = assert(s3:get_object{ Bucket = "bkt", Key = "big" })
      local got = obj.Body:read_all()
      assert.equal(#data, #got)
      assert.is_true(got == data)
      obj = assert(s3:get_object{ Bucket = "bkt", Key = "big", Range = "bytes=1000000-1000015" })
      assert.equal(data:sub(1000001, 1000016), obj.Body:read_all())
      -- over 16 MiB: the handler lets other requests run while it hashes
      local huge = data:rep(12) -- 18 MiB
      local out = assert(s3:put_object{ Bucket = "bkt", Key = "huge", Body = huge })
      assert.equal(md5q(huge), out.ETag)
      obj = assert(s3:get_object{ Bucket = "bkt", Key = "huge" })
      assert.is_true(obj.Body:read_all() == huge)
    end)
  end)

  it("streamed file uploads (signed body hash) and downloads, flexible checksums", function()
    with_s3(function(s3)
      assert(s3:create_bucket{ Bucket = "bkt" })
      local src = os.tmpname()
      local f = assert(io.open(src, "wb"))
      for i = 1, 40000 do f:write(string.format("%063d\n", i)) end -- 2.56 MB
      f:close()
      f = assert(io.open(src, "rb"))
      local data = f:read("a")
      f:close()
      local out = assert(s3:upload_file(src, "bkt", "file.bin", { ContentType = "application/x-file" }))
      assert.equal(md5q(data), out.ETag)
      local dst = os.tmpname()
      assert(s3:download_file("bkt", "file.bin", dst))
      f = assert(io.open(dst, "rb"))
      local got = f:read("a")
      f:close()
      os.remove(src)
      os.remove(dst)
      assert.is_true(got == data)
      -- CRC32 named by the caller: sent in a header, checked, returned with ChecksumMode
      out = assert(s3:put_object{ Bucket = "bkt", Key = "ck", Body = "hello", ChecksumAlgorithm = "CRC32" })
      assert.equal("NhCmhg==", out.ChecksumCRC32) -- CRC32("hello") = 0x3610a686
      local obj = assert(s3:get_object{ Bucket = "bkt", Key = "ck", ChecksumMode = "ENABLED" })
      assert.equal("hello", obj.Body:read_all())
      assert.equal("NhCmhg==", obj.ChecksumCRC32)
      fails("BadDigest", 400, s3:put_object{ Bucket = "bkt", Key = "ck2", Body = "hello", ChecksumCRC32 = "AAAAAA==" })
    end)
  end)

  it("concurrent writers and readers: every answer is one whole version", function()
    with_s3(function(s3)
      assert(s3:create_bucket{ Bucket = "bkt" })
      local versions = {}
      for i = 1, 8 do versions[i] = string.format("%02d", i):rep(100000 + i) end
      local valid = {}
      for _, v in ipairs(versions) do valid[md5q(v)] = v end
      local fns = {}
      for i = 1, 8 do
        fns[#fns + 1] = function() return assert(s3:put_object{ Bucket = "bkt", Key = "same", Body = versions[i] }).ETag end
        fns[#fns + 1] = function()
          local obj, err = s3:get_object{ Bucket = "bkt", Key = "same" }
          if not obj then
            assert.equal("NoSuchKey", err.code) -- before the first write landed
            return "none"
          end
          local body = obj.Body:read_all()
          assert.equal(valid[obj.ETag], body) -- the bytes of the version its ETag names
          return "ok"
        end
      end
      local results, errs = aws.gather(table.unpack(fns))
      assert.is_nil(errs)
      for i = 1, #results, 2 do assert.is_string(valid[results[i]] and results[i]) end
      local final = assert(s3:get_object{ Bucket = "bkt", Key = "same" })
      assert.equal(valid[final.ETag], final.Body:read_all())
      assert.equal(1, assert(s3:list_objects_v2{ Bucket = "bkt" }).KeyCount)
    end)
  end)

  it("CopyObject with both metadata directives, DeleteObjects", function()
    with_s3(function(s3)
      assert(s3:create_bucket{ Bucket = "bkt" })
      assert(s3:put_object{ Bucket = "bkt", Key = "src", Body = "data", ContentType = "text/a", Metadata = { a = "1" } })
      local out = assert(s3:copy_object{ Bucket = "bkt", Key = "c1", CopySource = "bkt/src" })
      assert.equal(md5q("data"), out.CopyObjectResult.ETag)
      assert.is_number(out.CopyObjectResult.LastModified)
      local h = assert(s3:head_object{ Bucket = "bkt", Key = "c1" })
      assert.equal("text/a", h.ContentType)
      assert.equal("1", h.Metadata.a)
      assert(s3:copy_object{ Bucket = "bkt", Key = "c2", CopySource = "/bkt/src",
        MetadataDirective = "REPLACE", ContentType = "text/b", Metadata = { b = "2" } })
      h = assert(s3:head_object{ Bucket = "bkt", Key = "c2" })
      assert.equal("text/b", h.ContentType)
      assert.same({ b = "2" }, h.Metadata)
      fails("InvalidRequest", 400, s3:copy_object{ Bucket = "bkt", Key = "src", CopySource = "bkt/src" })
      fails("NoSuchKey", 404, s3:copy_object{ Bucket = "bkt", Key = "x", CopySource = "bkt/none" })
      fails("PreconditionFailed", 412, s3:copy_object{ Bucket = "bkt", Key = "x", CopySource = "bkt/src",
        CopySourceIfMatch = '"nope"' })
      out = assert(s3:delete_objects{ Bucket = "bkt", Delete = { Objects = { { Key = "c1" }, { Key = "c2" },
        { Key = "never" } } } })
      assert.equal(3, #out.Deleted)
      local l = assert(s3:list_objects_v2{ Bucket = "bkt" })
      assert.equal(1, l.KeyCount)
      assert.equal("src", l.Contents[1].Key)
    end)
  end)

  it("ListObjectsV2 and ListObjects: pagination, delimiter, url-encoded keys", function()
    with_s3(function(s3)
      assert(s3:create_bucket{ Bucket = "bkt" })
      local want = {}
      for i = 1, 23 do
        local k = string.format("f/%02d & <x>", i)
        want[i] = k
        assert(s3:put_object{ Bucket = "bkt", Key = k, Body = "x" })
      end
      for _, k in ipairs { "g/1", "g/2", "top" } do assert(s3:put_object{ Bucket = "bkt", Key = k, Body = "x" }) end
      local all_pages = assert(s3:paginate("ListObjectsV2", { Bucket = "bkt", Prefix = "f/" }, { page_size = 5 })
        :build_full_result())
      local keys = {}
      for i, c in ipairs(all_pages.Contents) do keys[i] = c.Key end
      assert.same(want, keys)
      local pages = 0
      for page in s3:paginate("ListObjectsV2", { Bucket = "bkt", Delimiter = "/" }, { page_size = 1 }):pages() do
        pages = pages + 1
        assert.equal(1, page.KeyCount)
      end
      assert.equal(3, pages) -- f/, g/, top
      local out = assert(s3:list_objects_v2{ Bucket = "bkt", Delimiter = "/" })
      assert.equal("top", out.Contents[1].Key)
      assert.equal("f/", out.CommonPrefixes[1].Prefix)
      assert.equal("g/", out.CommonPrefixes[2].Prefix)
      out = assert(s3:list_objects_v2{ Bucket = "bkt", StartAfter = "g/1" })
      assert.equal("g/2", out.Contents[1].Key)
      out = assert(s3:list_objects{ Bucket = "bkt", Marker = "f/22 & <x>", MaxKeys = 2 })
      assert.equal("f/23 & <x>", out.Contents[1].Key)
      assert.is_true(out.IsTruncated)
      out = assert(s3:paginate("ListObjects", { Bucket = "bkt" }, { page_size = 4 }):build_full_result())
      assert.equal(26, #out.Contents)
      fails("NoSuchBucket", 404, s3:list_objects_v2{ Bucket = "nob" })
      fails("InvalidArgument", 400, s3:list_objects_v2{ Bucket = "bkt", ContinuationToken = "bogus" })
    end)
  end)

  it("multipart: create, upload, list, complete, abort and their errors", function()
    with_s3(function(s3)
      assert(s3:create_bucket{ Bucket = "bkt" })
      local p1, p2 = ("x"):rep(5 * MiB), "end"
      local up = assert(s3:create_multipart_upload{ Bucket = "bkt", Key = "mp", ContentType = "text/mp" })
      local id = up.UploadId
      local e1 = assert(s3:upload_part{ Bucket = "bkt", Key = "mp", UploadId = id, PartNumber = 1, Body = p1 }).ETag
      local e2 = assert(s3:upload_part{ Bucket = "bkt", Key = "mp", UploadId = id, PartNumber = 2, Body = p2 }).ETag
      local lp = assert(s3:list_parts{ Bucket = "bkt", Key = "mp", UploadId = id })
      assert.equal(2, #lp.Parts)
      assert.equal(5 * MiB, lp.Parts[1].Size)
      local lu = assert(s3:list_multipart_uploads{ Bucket = "bkt" })
      assert.equal(id, lu.Uploads[1].UploadId)
      fails("InvalidPart", 400, s3:complete_multipart_upload{ Bucket = "bkt", Key = "mp", UploadId = id,
        MultipartUpload = { Parts = { { PartNumber = 1, ETag = e2 } } } })
      fails("InvalidPartOrder", 400, s3:complete_multipart_upload{ Bucket = "bkt", Key = "mp", UploadId = id,
        MultipartUpload = { Parts = { { PartNumber = 2, ETag = e2 }, { PartNumber = 1, ETag = e1 } } } })
      local out = assert(s3:complete_multipart_upload{ Bucket = "bkt", Key = "mp", UploadId = id,
        MultipartUpload = { Parts = { { PartNumber = 1, ETag = e1 }, { PartNumber = 2, ETag = e2 } } } })
      assert.equal('"' .. core.md5_hex(core.md5(p1) .. core.md5(p2)) .. '-2"', out.ETag)
      local obj = assert(s3:get_object{ Bucket = "bkt", Key = "mp" })
      assert.equal("text/mp", obj.ContentType)
      assert.equal(5 * MiB + 3, #obj.Body:read_all())
      fails("NoSuchUpload", 404, s3:list_parts{ Bucket = "bkt", Key = "mp", UploadId = id })
      -- EntityTooSmall, then abort
      id = assert(s3:create_multipart_upload{ Bucket = "bkt", Key = "small" }).UploadId
      e1 = assert(s3:upload_part{ Bucket = "bkt", Key = "small", UploadId = id, PartNumber = 1, Body = "a" }).ETag
      e2 = assert(s3:upload_part{ Bucket = "bkt", Key = "small", UploadId = id, PartNumber = 2, Body = "b" }).ETag
      fails("EntityTooSmall", 400, s3:complete_multipart_upload{ Bucket = "bkt", Key = "small", UploadId = id,
        MultipartUpload = { Parts = { { PartNumber = 1, ETag = e1 }, { PartNumber = 2, ETag = e2 } } } })
      assert(s3:abort_multipart_upload{ Bucket = "bkt", Key = "small", UploadId = id })
      fails("NoSuchUpload", 404, s3:abort_multipart_upload{ Bucket = "bkt", Key = "small", UploadId = id })
      fails("NoSuchUpload", 404, s3:upload_part{ Bucket = "bkt", Key = "small", UploadId = id, PartNumber = 1,
        Body = "a" })
    end)
  end)

  it("signed aws-chunked uploads: every chunk signature is checked", function()
    with_s3(function(s3, em)
      assert(s3:create_bucket{ Bucket = "bkt" })
      local creds = { access_key = em.access_key, secret_key = em.secret_key }
      local function chunked_put(key, data, tamper)
        local url = em.url .. "/bkt/" .. key
        local hdr = sigv4.streaming_headers(#data, 65536)
        local seed, dbg = sigv4.sign({ method = "PUT", url = url, headers = hdr,
          payload_hash = sigv4.STREAMING_PAYLOAD }, creds, { region = "us-east-1", service = "s3" })
        local c = sigv4.chunked(creds, { region = "us-east-1", service = "s3" }, dbg)
        local frames = {}
        for i = 1, #data, 65536 do frames[#frames + 1] = c:frame(data:sub(i, i + 65535)) end
        frames[#frames + 1] = c:frame("")
        local body = table.concat(frames)
        if tamper then body = body:gsub("zzzz", "zzzy", 1) end
        return assert(http.request{ method = "PUT", url = url, headers = seed.headers, body = body, timeout = 30 })
      end
      local data = ("zzzz"):rep(50000) -- 200,000 bytes: 4 chunks
      local res = chunked_put("ok", data)
      assert.equal(200, res.status, res.body)
      assert.equal(md5q(data), res.headers.etag)
      assert.equal(data, assert(s3:get_object{ Bucket = "bkt", Key = "ok" }).Body:read_all())
      res = chunked_put("bad", data, true)
      assert.equal(403, res.status)
      assert.matches("<Code>SignatureDoesNotMatch</Code>", res.body)
      fails("NoSuchKey", 404, s3:get_object{ Bucket = "bkt", Key = "bad" })
    end)
  end)

  it("aws-chunked uploads without auth (--no-auth): framing decoded, signatures not checked", function()
    run(function()
      local em = assert(emulator.start{ data_dir = dir, port = 0, no_auth = true })
      local ok, err = pcall(function()
        local s3 = client(em)
        assert(s3:create_bucket{ Bucket = "bkt" })
        local creds = { access_key = "SOMEONE", secret_key = "another secret" }
        local url = em.url .. "/bkt/k"
        local data = ("n"):rep(70000)
        local hdr = sigv4.streaming_headers(#data, 65536)
        local seed, dbg = sigv4.sign({ method = "PUT", url = url, headers = hdr, payload_hash = sigv4.STREAMING_PAYLOAD },
          creds, { region = "us-east-1", service = "s3" })
        local c = sigv4.chunked(creds, { region = "us-east-1", service = "s3" }, dbg)
        local body = c:frame(data:sub(1, 65536)) .. c:frame(data:sub(65537)) .. c:frame("")
        local res = assert(http.request{ method = "PUT", url = url, headers = seed.headers, body = body, timeout = 10 })
        assert.equal(200, res.status, res.body)
        -- unsigned altogether
        hdr["x-amz-content-sha256"] = sigv4.STREAMING_PAYLOAD
        res = assert(http.request{ method = "PUT", url = em.url .. "/bkt/u", headers = hdr, body = body, timeout = 10 })
        assert.equal(200, res.status, res.body)
        assert.equal(data, assert(s3:get_object{ Bucket = "bkt", Key = "u" }).Body:read_all())
      end)
      em:close()
      if not ok then error(err, 0) end
    end)
  end)

  it("presigned GET and virtual-hosted style", function()
    with_s3(function(s3, em)
      assert(s3:create_bucket{ Bucket = "bkt" })
      assert(s3:put_object{ Bucket = "bkt", Key = "p q", Body = "presigned" })
      local url = assert(s3:generate_presigned_url("GetObject", { Bucket = "bkt", Key = "p q" }, { expires_in = 60 }))
      local res = assert(http.request{ url = url, timeout = 10 })
      assert.equal(200, res.status, res.body)
      assert.equal("presigned", res.body)
      res = assert(http.request{ url = url:gsub("X%-Amz%-Signature=%x+", "X-Amz-Signature=" .. ("0"):rep(64)), timeout = 10 })
      assert.equal(403, res.status)
      local vh = client(em, { endpoint_url = "http://localhost:" .. em.port, s3 = { addressing_style = "virtual" } })
      local out = assert(vh:put_object{ Bucket = "bkt", Key = "v/h", Body = "vhost" })
      assert.equal(md5q("vhost"), out.ETag)
      assert.equal("vhost", assert(s3:get_object{ Bucket = "bkt", Key = "v/h" }).Body:read_all())
      assert.equal(2, assert(vh:list_objects_v2{ Bucket = "bkt" }).KeyCount)
    end)
  end)

  it("keeps everything acknowledged across a restart of the endpoint", function()
    with_s3(function(s3)
      assert(s3:create_bucket{ Bucket = "bkt" })
      for i = 1, 20 do assert(s3:put_object{ Bucket = "bkt", Key = "k" .. i, Body = "v" .. i }) end
      assert(s3:delete_object{ Bucket = "bkt", Key = "k7" })
    end)
    with_s3(function(s3)
      local out = assert(s3:list_objects_v2{ Bucket = "bkt" })
      assert.equal(19, out.KeyCount)
      assert.equal("v13", assert(s3:get_object{ Bucket = "bkt", Key = "k13" }).Body:read_all())
      fails("NoSuchKey", 404, s3:get_object{ Bucket = "bkt", Key = "k7" })
    end)
  end)
end)

-- `aio-aws local` as a child process killed with SIGKILL in the middle of
-- a stream of uploads: after a restart every acknowledged object is there
-- whole, and nothing half-written is visible.
describe("emulator s3 (crash of the endpoint process)", function()
  local aws = require "aio_aws"
  local run = require "support.run"
  local em_support = require "support.emulator"

  it("keeps every acknowledged object whole across a SIGKILL", function()
    local em = assert(em_support.start{})
    local function client()
      local session = assert(aws.session{ region = "us-east-1",
        credentials = { access_key = em.access_key, secret_key = em.secret_key } })
      return assert(session:client("s3", { endpoint_url = em.url, retries = { max_attempts = 1 }, read_timeout = 10 }))
    end
    local function body_of_key(k) return (k .. ";"):rep(40000) end -- ~300 KB, spooled by the server
    local acked = {}
    run(function()
      local s3 = client()
      assert(s3:create_bucket{ Bucket = "bkt" })
      local count, killed = 0, false
      local function writer(w)
        for n = 1, 1000 do
          local k = string.format("w%d/%04d", w, n)
          local out = s3:put_object{ Bucket = "bkt", Key = k, Body = body_of_key(k) }
          if not out then return end -- the endpoint is gone
          acked[#acked + 1] = k
          count = count + 1
          if count == 60 and not killed then
            killed = true
            os.execute("kill -KILL " .. math.tointeger(em.proc.pid))
          end
        end
      end
      aws.gather(function() writer(1) end, function() writer(2) end, function() writer(3) end)
      assert.is_true(killed)
    end)
    assert(em:restart())
    run(function()
      local s3 = client()
      for _, k in ipairs(acked) do
        local obj = assert(s3:get_object{ Bucket = "bkt", Key = k })
        assert.equal(body_of_key(k), obj.Body:read_all())
      end
      local listed = assert(s3:paginate("ListObjectsV2", { Bucket = "bkt" }):build_full_result())
      assert.is_true(#listed.Contents >= #acked)
      for _, c in ipairs(listed.Contents) do
        -- an unacknowledged put may have landed, but only whole
        assert.equal(md5q(body_of_key(c.Key)), c.ETag)
        assert.equal(#body_of_key(c.Key), c.Size)
      end
    end)
    em:stop()
  end)
end)
