-- The local endpoint's core: routing, SigV4 verification, faults, unknown
-- operations (router called with request tables, services faked), then
-- emulator.start with the real HTTP server, then the `aio-aws local` CLI
-- as a process (signals, restart, state dir, bad arguments).
--
-- Signed requests come from botocore (Debian's /usr/bin/python3), an
-- independent signer; the aws-chunked case uses the example of the S3 API
-- Reference (sigv4-streaming.html) with its published signatures.
local cjson = require "cjson"
local aws = require "aio_aws"
local core = require "aio_aws.core"
local model = require "aio_aws.model"
local router = require "aio_aws.emulator.router"
local auth = require "aio_aws.emulator.auth"
local emulator = require "aio_aws.emulator"
local proc = require "support.proc"
local run = require "support.run"
local support_emulator = require "support.emulator"

local PYTHON = "/usr/bin/python3"
local AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

-- botocore prepares (and signs) requests without sending them.
-- Case: {service, method (client method), params, endpoint, access_key,
-- secret_key, virtual (S3 virtual-hosted), presign = seconds (a presigned
-- URL), v2 (S3 signature version 2)} -> {method, url, headers, body_b64}.
local SIGNER = [==[
import base64, json, sys
import botocore.session
from botocore.config import Config

out = []
session = botocore.session.get_session()
for case in json.load(sys.stdin):
    s3cfg = {"addressing_style": "virtual" if case.get("virtual") else "path"}
    cfg = Config(s3=s3cfg, signature_version=("s3" if case.get("v2") else "s3v4") if case["service"] == "s3" else None,
                 retries={"max_attempts": 1})
    client = session.create_client(case["service"], region_name="us-east-1", endpoint_url=case["endpoint"],
                                   aws_access_key_id=case["access_key"], aws_secret_access_key=case["secret_key"],
                                   config=cfg)
    params = case.get("params") or {}
    if "body_text" in case:
        params["Body"] = case["body_text"].encode()
    if case.get("presign"):
        url = client.generate_presigned_url(case["method"], Params=params, ExpiresIn=case["presign"])
        out.append({"method": "GET", "url": url, "headers": {}, "body_b64": ""})
        continue
    captured = {}
    def before_send(request, **kwargs):
        captured["method"] = request.method
        captured["url"] = request.url
        captured["headers"] = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        captured["body_b64"] = base64.b64encode(body or b"").decode()
        raise StopIteration
    client.meta.events.register("before-send", before_send)
    try:
        getattr(client, case["method"])(**params)
    except StopIteration:
        pass
    out.append(captured)
json.dump(out, sys.stdout)
]==]

local function have_botocore()
  return os.execute(PYTHON .. " -c 'import botocore.session' >/dev/null 2>&1") == true
end

local function botocore_requests(cases)
  local dir = proc.tmpdir("emsign")
  local script, input = dir .. "/sign.py", dir .. "/in.json"
  local f = assert(io.open(script, "w")); f:write(SIGNER); f:close()
  f = assert(io.open(input, "w")); f:write(cjson.encode(cases)); f:close()
  local out, ok = proc.sh(PYTHON .. " " .. proc.quote(script) .. " < " .. proc.quote(input) .. " 2>&1")
  proc.rmdir(dir)
  assert(ok, out)
  local reqs = cjson.decode(out)
  for i, r in ipairs(reqs) do
    -- as the HTTP server hands it over
    local host, path, query = r.url:match("^https?://([^/]+)(/[^?]*)%??(.*)$")
    r.headers.host = host
    local list = {}
    for k, v in pairs(r.headers) do list[#list + 1] = { k, v } end
    reqs[i] = { method = r.method, path = path, query = query, headers = r.headers, header_list = list,
      body = core.base64_decode(r.body_b64), target = path .. (query ~= "" and "?" .. query or "") }
  end
  return reqs
end

-- Fake services that record what reached them.
local function fakes()
  local calls = {}
  local function json_service(name)
    return {
      call = function(_, op, params, req)
        calls[#calls + 1] = { service = name, op = op, params = params, req = req }
        if op == "SubmitJob" then return { jobId = "j-1", jobName = params.jobName, jobArn = "arn:j-1" } end
        if op == "Invoke" then return { StatusCode = 200, Payload = params.Payload, ExecutedVersion = "$LATEST" } end
        if op == "CreateLogGroup" then return nil, { code = "ResourceAlreadyExistsException",
          message = "The specified log group already exists", status = 400 } end
        if op == "DeleteLogGroup" then error("service bug") end
        if op == "GetFunction" then return { raw = { status = 299, headers = { ["x-raw"] = "1" }, body = "raw" } } end
        return {}
      end,
    }
  end
  local services = {
    s3 = { handle = function(_, req, info)
      calls[#calls + 1] = { service = "s3", req = req, info = info }
      return { status = 200, headers = { ["content-type"] = "text/plain" }, body = "s3 " .. tostring(info.bucket_from_host) }
    end },
    batch = json_service("batch"), logs = json_service("logs"), lambda = json_service("lambda"),
  }
  return services, calls
end

local models = {}
for _, n in ipairs { "batch", "logs", "lambda" } do models[n] = assert(model.load(n)) end

local function new_router(opts)
  opts = opts or {}
  local services, calls = fakes()
  local state = { services = opts.services or services, missing = opts.missing or {}, models = models,
    access_key = AK, secret_key = SK, no_auth = opts.no_auth, faults = opts.faults or {},
    clock = opts.clock or os.time, sleep = opts.sleep, random = opts.random }
  return router.new(state), calls
end

local function xml_code(body) return body:match("<Code>(.-)</Code>") end
local function json_of(res) return cjson.decode(res.body) end

local ENDPOINT = "http://127.0.0.1:4566"

describe("emulator router", function()
  if not have_botocore() then
    pending("no botocore in /usr/bin/python3")
    return
  end

  local signed -- botocore's requests, signed with AK/SK
  local wrong  -- the same, signed with a wrong secret
  local unknown_key
  local CASES = {
    { service = "logs", method = "describe_log_groups", params = {} },
    { service = "batch", method = "submit_job", params = { jobName = "n", jobQueue = "q", jobDefinition = "d" } },
    { service = "lambda", method = "invoke", params = { FunctionName = "f", Payload = '{"a":1}', LogType = "Tail" } },
    { service = "s3", method = "list_objects_v2", params = { Bucket = "bkt", Prefix = "a b/" } },
    { service = "s3", method = "put_object", params = { Bucket = "bkt", Key = "k ü", Metadata = { m = "1" } },
      body_text = "hello", virtual = true, endpoint = "http://localhost:4566" },
    { service = "logs", method = "create_log_group", params = { logGroupName = "g" } },
    { service = "logs", method = "delete_log_group", params = { logGroupName = "g" } },
    { service = "lambda", method = "get_function", params = { FunctionName = "f" } },
  }
  local function with(cases, ak, sk)
    local out = {}
    for i, c in ipairs(cases) do
      local t = {}
      for k, v in pairs(c) do t[k] = v end
      t.endpoint = t.endpoint or ENDPOINT
      t.access_key, t.secret_key = ak, sk
      out[i] = t
    end
    return out
  end

  setup(function()
    local all = botocore_requests(with(CASES, AK, SK))
    local bad = botocore_requests(with(CASES, AK, "wrong-secret"))
    local unk = botocore_requests(with(CASES, "AKIDUNKNOWN", SK))
    signed, wrong, unknown_key = all, bad, unk
  end)

  describe("routing", function()
    it("sends each signed request to the service of its credential scope, decoded by the model", function()
      local handle, calls = new_router()
      for i = 1, 5 do
        local res = handle(signed[i])
        assert(res.status < 300, tostring(res.body))
      end
      assert.are.equal("logs", calls[1].service)
      assert.are.equal("DescribeLogGroups", calls[1].op)
      assert.are.equal("batch", calls[2].service)
      assert.are.equal("SubmitJob", calls[2].op)
      assert.are.same({ jobName = "n", jobQueue = "q", jobDefinition = "d" }, calls[2].params)
      assert.are.equal("lambda", calls[3].service)
      assert.are.equal("Invoke", calls[3].op)
      assert.are.equal('{"a":1}', calls[3].params.Payload)
      assert.are.equal("Tail", calls[3].params.LogType)
      assert.are.equal("s3", calls[4].service)
      assert.is_nil(calls[4].info.bucket_from_host)
      assert.are.equal(AK, calls[4].info.access_key)
      -- virtual-hosted style: the bucket comes from the Host header
      assert.are.equal("s3", calls[5].service)
      assert.are.equal("bkt", calls[5].info.bucket_from_host)
      assert.are.equal("bkt.localhost:4566", calls[5].req.headers.host)
    end)

    it("answers with the model's encoding and a request id", function()
      local handle = new_router()
      local res = handle(signed[2])
      assert.are.equal(200, res.status)
      assert.are.same({ jobId = "j-1", jobName = "n", jobArn = "arn:j-1" }, json_of(res))
      assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", res.headers["x-amzn-requestid"])
      res = handle(signed[3])
      assert.are.equal(200, res.status)
      assert.are.equal('{"a":1}', res.body)
      assert.are.equal("$LATEST", res.headers["x-amz-executed-version"])
      res = handle(signed[4])
      assert.matches("^%x+$", res.headers["x-amz-request-id"])
    end)

    it("passes service errors through in the JSON error format, and a raising service is a 500", function()
      local handle = new_router()
      local res = handle(signed[6])
      assert.are.equal(400, res.status)
      assert.are.equal("ResourceAlreadyExistsException", res.headers["x-amzn-errortype"])
      assert.are.same({ __type = "ResourceAlreadyExistsException", message = "The specified log group already exists" },
        json_of(res))
      local logged = {}
      local logmod = require "aio_aws.log"
      logmod.set_sink(function(r) logged[#logged + 1] = r end)
      res = handle(signed[7])
      logmod.set_sink(nil)
      assert.are.equal("ERROR", logged[1].level)
      assert.matches("service bug", logged[1].message) -- the traceback goes to the log
      assert.are.equal(500, res.status)
      assert.are.equal("ServiceException", res.headers["x-amzn-errortype"])
      assert.is_nil(res.body:find("service bug", 1, true)) -- no internals in the answer
    end)

    it("lets a service answer with a raw response (request id added)", function()
      local handle = new_router()
      local res = handle(signed[8])
      assert.are.equal(299, res.status)
      assert.are.equal("raw", res.body)
      assert.is_truthy(res.headers["x-amzn-requestid"])
    end)

    it("routes unsigned requests by X-Amz-Target, rest-json path and Host with --no-auth", function()
      local handle, calls = new_router { no_auth = true }
      handle { method = "POST", path = "/", query = "", headers = { ["x-amz-target"] = "Logs_20140328.DescribeLogStreams" },
        body = '{"logGroupName":"g"}' }
      handle { method = "POST", path = "/v1/describejobs", query = "", headers = {}, body = '{"jobs":["1"]}' }
      handle { method = "GET", path = "/2015-03-31/functions/", query = "MaxItems=2", headers = {}, body = "" }
      handle { method = "GET", path = "/v1/describejobs", query = "", headers = { host = "b.localhost:1" }, body = "" }
      handle { method = "GET", path = "/", query = "", headers = {}, body = "" }
      assert.are.same({ "logs", "batch", "lambda", "s3", "s3" },
        { calls[1].service, calls[2].service, calls[3].service, calls[4].service, calls[5].service })
      assert.are.equal("DescribeLogStreams", calls[1].op)
      assert.are.same({ jobs = { "1" } }, calls[2].params)
      assert.are.same({ MaxItems = 2 }, calls[3].params)
      assert.are.equal("b", calls[4].info.bucket_from_host)
    end)

    it("an unknown operation is UnknownOperationException", function()
      local handle = new_router { no_auth = true }
      local res = handle { method = "POST", path = "/", query = "", headers = { ["x-amz-target"] = "Logs_20140328.Nope" }, body = "{}" }
      assert.are.equal(400, res.status)
      assert.are.equal("UnknownOperationException", json_of(res).__type)
      res = handle { method = "POST", path = "/v1/nosuchthing", query = "",
        headers = { authorization = "AWS4-HMAC-SHA256 Credential=" .. AK .. "/20200101/us-east-1/batch/aws4_request, SignedHeaders=host, Signature=00" },
        body = "{}" }
      assert.are.equal(404, res.status)
      assert.are.equal("UnknownOperationException", res.headers["x-amzn-errortype"])
    end)

    it("a service this endpoint does not serve gets UnknownServiceException", function()
      local handle = new_router { no_auth = true }
      local res = handle { method = "POST", path = "/", query = "", headers = {
        authorization = "AWS4-HMAC-SHA256 Credential=" .. AK .. "/20200101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00" },
        body = "" }
      assert.are.equal(400, res.status)
      assert.are.equal("UnknownServiceException", json_of(res).__type)
    end)

    it("a service whose module is missing answers 501 in its own format, the others work", function()
      local services = fakes()
      services.batch, services.s3 = nil, nil
      local handle = new_router { services = services, missing = { batch = "module 'aio_aws.emulator.batch' not found",
        s3 = "boom" } }
      local res = handle(signed[2])
      assert.are.equal(501, res.status)
      assert.are.equal("NotImplemented", json_of(res).__type)
      assert.matches("aio_aws.emulator.batch", json_of(res).message, 1, true)
      res = handle(signed[4])
      assert.are.equal(501, res.status)
      assert.are.equal("NotImplemented", xml_code(res.body))
      res = handle(signed[1])
      assert.are.equal(200, res.status)
    end)

    it("misuse raises", function()
      assert.has_error(function() router.new(nil) end)
      assert.has_error(function() router.new { services = {} } end)
      local handle = new_router()
      assert.has_error(function() handle(nil) end)
      assert.has_error(function() handle { path = "/" } end)
    end)
  end)

  describe("authentication", function()
    it("accepts botocore's signatures for every service", function()
      local handle = new_router()
      for i = 1, 5 do
        local res = handle(signed[i])
        assert(res.status < 300, i .. ": " .. tostring(res.body))
      end
    end)

    it("a wrong secret: S3 SignatureDoesNotMatch XML, JSON services InvalidSignatureException, 403", function()
      local handle = new_router()
      for i = 1, 5 do
        local res = handle(wrong[i])
        assert.are.equal(403, res.status)
        if i >= 4 then
          assert.are.equal("SignatureDoesNotMatch", xml_code(res.body))
          assert.are.equal("application/xml", res.headers["content-type"])
          assert.are.equal(AK, res.body:match("<AWSAccessKeyId>(.-)</AWSAccessKeyId>"))
          assert.is_truthy(res.body:find("<CanonicalRequest>", 1, true))
        else
          assert.are.equal("InvalidSignatureException", json_of(res).__type)
          assert.are.equal("InvalidSignatureException", res.headers["x-amzn-errortype"])
        end
        assert.is_nil(res.body:find(SK, 1, true))
      end
    end)

    it("an unknown access key: InvalidAccessKeyId (S3), UnrecognizedClientException (JSON)", function()
      local handle = new_router()
      local res = handle(unknown_key[1])
      assert.are.equal(403, res.status)
      assert.are.equal("UnrecognizedClientException", json_of(res).__type)
      res = handle(unknown_key[4])
      assert.are.equal(403, res.status)
      assert.are.equal("InvalidAccessKeyId", xml_code(res.body))
    end)

    it("a changed body, header or path no longer matches", function()
      local handle = new_router()
      local r = signed[2]
      local tampered = {}
      for k, v in pairs(r) do tampered[k] = v end
      tampered.body = r.body:gsub('"n"', '"m"')
      local res = handle(tampered)
      assert.are.equal(403, res.status)
      assert.are.equal("InvalidSignatureException", json_of(res).__type)

      local s = signed[5]
      tampered = {}
      for k, v in pairs(s) do tampered[k] = v end
      tampered.headers = {}
      for k, v in pairs(s.headers) do tampered.headers[k] = v end
      tampered.headers["x-amz-meta-m"] = "2"
      tampered.header_list = nil
      res = handle(tampered)
      assert.are.equal("SignatureDoesNotMatch", xml_code(res.body))

      tampered = {}
      for k, v in pairs(signed[4]) do tampered[k] = v end
      tampered.path = "/other"
      res = handle(tampered)
      assert.are.equal("SignatureDoesNotMatch", xml_code(res.body))
    end)

    it("unsigned requests: S3 AccessDenied, JSON MissingAuthenticationTokenException", function()
      local handle, calls = new_router()
      local res = handle { method = "GET", path = "/bkt", query = "", headers = { host = "127.0.0.1:1" }, body = "" }
      assert.are.equal(403, res.status)
      assert.are.equal("AccessDenied", xml_code(res.body))
      res = handle { method = "HEAD", path = "/bkt/k", query = "", headers = {}, body = "" }
      assert.are.equal(403, res.status)
      assert.is_nil(res.body)
      res = handle { method = "POST", path = "/", query = "", headers = { ["x-amz-target"] = "Logs_20140328.DescribeLogGroups" }, body = "{}" }
      assert.are.equal(403, res.status)
      assert.are.equal("MissingAuthenticationTokenException", json_of(res).__type)
      res = handle { method = "POST", path = "/v1/submitjob", query = "", headers = {}, body = "{}" }
      assert.are.equal("MissingAuthenticationTokenException", json_of(res).__type)
      assert.are.equal(0, #calls)
    end)

    it("malformed Authorization headers are 400 (AuthorizationHeaderMalformed / IncompleteSignatureException)", function()
      local handle = new_router()
      for _, a in ipairs { "AWS4-HMAC-SHA256 Credential=x", "Basic abc",
        "AWS4-HMAC-SHA256 Credential=AK/2020/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0" } do
        local res = handle { method = "GET", path = "/", query = "", headers = { authorization = a }, body = "" }
        assert.are.equal(400, res.status, a)
        assert.are.equal("AuthorizationHeaderMalformed", xml_code(res.body))
      end
      local res = handle { method = "POST", path = "/", query = "", headers = {
        authorization = "AWS4-HMAC-SHA256 Credential=" .. AK .. "/20200101/us-east-1/logs/aws4_request, SignedHeaders=host, Signature=0" },
        body = "{}" }
      assert.are.equal(400, res.status)
      assert.are.equal("IncompleteSignatureException", json_of(res).__type)
    end)

    it("a clock skew over 15 minutes is RequestTimeTooSkewed; under it is accepted", function()
      local skew = 0
      local handle = new_router { clock = function() return os.time() + skew end }
      skew = 16 * 60
      local res = handle(signed[4])
      assert.are.equal(403, res.status)
      assert.are.equal("RequestTimeTooSkewed", xml_code(res.body))
      assert.are.equal("900000", res.body:match("<MaxAllowedSkewMilliseconds>(%d+)<"))
      res = handle(signed[1])
      assert.are.equal(403, res.status)
      assert.are.equal("RequestTimeTooSkewed", json_of(res).__type)
      skew = -16 * 60
      assert.are.equal("RequestTimeTooSkewed", json_of(handle(signed[2])).__type)
      skew = 10 * 60
      assert.are.equal(200, handle(signed[1]).status)
      skew = -10 * 60
      assert.are.equal(200, handle(signed[4]).status)
    end)

    it("accepts presigned URLs (SigV4 query and S3 signature version 2) until they expire", function()
      local cases = {
        { service = "s3", method = "get_object", params = { Bucket = "bkt", Key = "a b/ü+", ResponseContentType = "text/x" },
          presign = 60 },
        { service = "s3", method = "get_object", params = { Bucket = "bkt", Key = "a b/ü+", ResponseContentType = "text/x" },
          presign = 60, v2 = true },
        { service = "s3", method = "get_object", params = { Bucket = "bkt", Key = "k" }, presign = 60, virtual = true,
          endpoint = "http://localhost:4566" },
        { service = "s3", method = "get_object", params = { Bucket = "bkt", Key = "k" }, presign = 60, virtual = true,
          endpoint = "http://localhost:4566", v2 = true },
      }
      local reqs = botocore_requests(with(cases, AK, SK))
      local skew = 0
      local handle, calls = new_router { clock = function() return os.time() + skew end }
      for i, r in ipairs(reqs) do
        local res = handle(r)
        assert.are.equal(200, res.status, i .. ": " .. tostring(res.body))
      end
      assert.are.equal(4, #calls)
      assert.are.equal("bkt", calls[3].info.bucket_from_host)
      -- a different key is another resource
      for i = 1, 2 do
        local r = {}
        for k, v in pairs(reqs[i]) do r[k] = v end
        r.path = r.path:gsub("a%%20b", "a%%20c")
        local res = handle(r)
        assert.are.equal(403, res.status)
        assert.are.equal("SignatureDoesNotMatch", xml_code(res.body))
      end
      skew = 120
      for i = 1, 2 do
        local res = handle(reqs[i])
        assert.are.equal(403, res.status)
        assert.are.equal("AccessDenied", xml_code(res.body))
        assert.are.equal("Request has expired", res.body:match("<Message>(.-)</Message>"))
      end
    end)

    it("hands S3 the chunk signer of an aws-chunked upload (S3 API Reference example)", function()
      -- sigv4-streaming.html: PUT /examplebucket/chunkObject.txt, 66560 bytes of "a"
      -- in chunks of 64 KiB and 1 KiB, seed signature 4f232c43...
      local headers = {
        host = "s3.amazonaws.com",
        ["x-amz-date"] = "20130524T000000Z",
        ["x-amz-storage-class"] = "REDUCED_REDUNDANCY",
        ["x-amz-content-sha256"] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        ["content-encoding"] = "aws-chunked",
        ["x-amz-decoded-content-length"] = "66560",
        ["content-length"] = "66824",
        authorization = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
          .. "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
          .. "x-amz-decoded-content-length;x-amz-storage-class,"
          .. "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
      }
      local services, calls = fakes()
      local h = router.new { services = services, missing = {}, models = models,
        access_key = "AKIAIOSFODNN7EXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        clock = function() return auth.amz_to_epoch("20130524T000000Z") + 5 end }
      local res = h { method = "PUT", path = "/examplebucket/chunkObject.txt", query = "", headers = headers, body = "" }
      assert.are.equal(200, res.status, tostring(res.body))
      local st = calls[1].info.streaming
      assert.are.equal("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9", st.seed_signature)
      assert.are.equal("20130524T000000Z", st.amz_date)
      assert.are.equal("20130524/us-east-1/s3/aws4_request", st.scope)
      assert.are.equal("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        st.chunker:sign_chunk(string.rep("a", 65536)))
      assert.are.equal("0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        st.chunker:sign_chunk(string.rep("a", 1024)))
      assert.are.equal("b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9", st.chunker:sign_chunk(""))
      st.chunker:close()
      -- a wrong seed signature is refused before S3 sees the upload
      headers.authorization = headers.authorization:gsub("4f232c43", "4f232c44")
      res = h { method = "PUT", path = "/examplebucket/chunkObject.txt", query = "", headers = headers, body = "" }
      assert.are.equal("SignatureDoesNotMatch", xml_code(res.body))
      assert.are.equal(1, #calls)
    end)

    it("--no-auth skips verification but still tells S3 the access key", function()
      local handle, calls = new_router { no_auth = true }
      local res = handle(wrong[4])
      assert.are.equal(200, res.status)
      assert.are.equal(AK, calls[1].info.access_key)
      assert.are.equal(200, handle(wrong[1]).status)
    end)
  end)

  describe("faults", function()
    it("throttle_rate 1 throttles every service in its own way", function()
      local handle, calls = new_router { faults = { throttle_rate = 1 } }
      local res = handle(signed[1])
      assert.are.equal(400, res.status)
      assert.are.equal("ThrottlingException", json_of(res).__type)
      res = handle(signed[2])
      assert.are.equal(429, res.status)
      assert.are.equal("TooManyRequestsException", json_of(res).__type)
      res = handle(signed[3])
      assert.are.equal(429, res.status)
      assert.are.equal("TooManyRequestsException", res.headers["x-amzn-errortype"])
      res = handle(signed[4])
      assert.are.equal(503, res.status)
      assert.are.equal("SlowDown", xml_code(res.body))
      assert.are.equal(0, #calls)
    end)

    it("throttle_rate p throttles when the draw is below p", function()
      local draws = { 0.29, 0.31 }
      local handle = new_router { faults = { throttle_rate = 0.3 }, random = function() return table.remove(draws, 1) end }
      assert.are.equal(400, handle(signed[1]).status)
      assert.are.equal(200, handle(signed[1]).status)
      local never = new_router { faults = { throttle_rate = 0 }, random = function() return 0 end }
      assert.are.equal(200, never(signed[1]).status)
    end)

    it("latency_ms sleeps before answering", function()
      local slept = {}
      local handle = new_router { faults = { latency_ms = 250 }, sleep = function(s) slept[#slept + 1] = s end }
      handle(signed[1])
      handle(signed[4])
      assert.are.same({ 0.25, 0.25 }, slept)
    end)
  end)
end)

describe("emulator.start", function()
  it("starts every service under <data_dir>/<name>, serves over HTTP and closes", function()
    local dir = proc.tmpdir("emstart")
    finally(function() proc.rmdir(dir) end)
    local em_url, status, body, missing
    run(function()
      local em = assert(emulator.start { data_dir = dir .. "/state/", port = 0, no_auth = true })
      em_url = em.url
      missing = em.missing
      assert.matches("aio_aws.emulator", tostring(em))
      assert.is_nil(tostring(em):find(em.secret_key, 1, true))
      local http = require "aio_aws.http"
      local res = assert(http.request { method = "POST", url = em.url .. "/", headers = {
        ["x-amz-target"] = "Logs_20140328.DescribeLogGroups", ["content-type"] = "application/x-amz-json-1.1" },
        body = "{}", timeout = 10 })
      status, body = res.status, res.body
      em:close()
      em:close()
    end)
    assert.matches("^http://127%.0%.0%.1:%d+$", em_url)
    for _, name in ipairs { "s3", "batch", "logs", "lambda" } do
      assert.is_true(os.execute("test -d " .. proc.quote(dir .. "/state/" .. name)) == true, name)
    end
    if missing.logs then
      assert.are.equal(501, status)
    else
      assert.are.equal(200, status, body)
      assert.is_table(cjson.decode(body).logGroups)
    end
  end)

  it("a service module that fails to load leaves that service 501, the rest served", function()
    local dir = proc.tmpdir("emfail")
    finally(function()
      proc.rmdir(dir)
      package.preload["aio_aws.emulator.batch"] = nil
      package.loaded["aio_aws.emulator.batch"] = nil
    end)
    local saved = package.loaded["aio_aws.emulator.batch"]
    package.loaded["aio_aws.emulator.batch"] = nil
    package.preload["aio_aws.emulator.batch"] = function() error("broken on purpose") end
    local status, body, why
    run(function()
      local em = assert(emulator.start { data_dir = dir, port = 0, no_auth = true })
      why = em.missing.batch
      local http = require "aio_aws.http"
      local res = assert(http.request { method = "POST", url = em.url .. "/v1/describejobs", body = '{"jobs":[]}',
        headers = { ["content-type"] = "application/json" }, timeout = 10 })
      status, body = res.status, res.body
      em:close()
    end)
    package.loaded["aio_aws.emulator.batch"] = saved
    assert.matches("broken on purpose", why)
    assert.are.equal(501, status)
    assert.are.equal("NotImplemented", cjson.decode(body).__type)
  end)

  it("a port in use is nil, err", function()
    local dir = proc.tmpdir("emport")
    finally(function() proc.rmdir(dir) end)
    local res, err
    run(function()
      local first = assert(emulator.start { data_dir = dir, port = 0 })
      res, err = emulator.start { data_dir = dir, port = first.port }
      first:close()
    end)
    assert.is_nil(res)
    assert.is_truthy(err)
  end)

  it("an unusable data dir is nil, err", function()
    local res, err
    run(function() res, err = emulator.start { data_dir = "/proc/no/such/dir", port = 0 } end)
    assert.is_nil(res)
    assert.are.equal("DataDirError", err.code)
  end)

  it("misuse raises", function()
    run(function()
      assert.has_error(function() emulator.start {} end, nil) -- no data_dir
      assert.has_error(function() emulator.start { data_dir = "/tmp/x", port = 70000 } end)
      assert.has_error(function() emulator.start { data_dir = "/tmp/x", port = "80" } end)
      assert.has_error(function() emulator.start { data_dir = "/tmp/x", faults = { throttle_rate = 2 } } end)
      assert.has_error(function() emulator.start { data_dir = "/tmp/x", faults = { latency_ms = -1 } } end)
      assert.has_error(function() emulator.start { data_dir = "/tmp/x", access_key = "a/b" } end)
      assert.has_error(function() emulator.start { data_dir = "/tmp/x", region = "bad region" } end)
      assert.has_error(function() emulator.start("x") end)
    end)
    -- outside a task
    assert.has_error(function() emulator.start { data_dir = "/tmp/x", port = 0 } end)
    assert.has_error(function() emulator.wait_signal() end)
  end)
end)

describe("emulator.wait_signal", function()
  local function my_pid()
    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("n")
    f:close()
    return math.tointeger(pid)
  end

  it("returns the name of the signal that arrived", function()
    local got
    run(function()
      aws.spawn(function()
        aws.sleep(0.01)
        os.execute("kill -USR1 " .. my_pid())
      end)
      got = emulator.wait_signal { "USR2", "USR1" }
    end)
    assert.are.equal("USR1", got)
  end)

  it("a cancelled wait stops watching (the task ends with Cancelled)", function()
    local res, err
    run(function()
      local t = aws.spawn(function() return emulator.wait_signal { "USR1" } end)
      aws.sleep(0.01)
      t:cancel()
      res, err = t:wait(5)
    end)
    assert.is_nil(res)
    assert.are.equal("Cancelled", err.code)
  end)

  it("misuse raises", function()
    run(function()
      assert.has_error(function() emulator.wait_signal { "NOPE" } end)
      assert.has_error(function() emulator.wait_signal {} end)
      assert.has_error(function() emulator.wait_signal { 15 } end)
      assert.has_error(function() emulator.wait_signal "TERM" end)
    end)
  end)
end)

describe("aio-aws local (CLI)", function()
  local function sh_quiet(cmd)
    return proc.sh("{ " .. cmd .. "; } 2>&1")
  end

  it("prints its endpoint and credentials, creates the state dir, and exits 0 on SIGTERM and SIGINT", function()
    local em = assert(support_emulator.start {})
    finally(function() em:stop() end)
    assert.matches("^http://127%.0%.0%.1:%d+$", em.url)
    assert.are.equal(emulator.DEFAULT_ACCESS_KEY, em.access_key)
    assert.are.equal(emulator.DEFAULT_SECRET_KEY, em.secret_key)
    assert.are.equal("us-east-1", em.region)
    for _, name in ipairs { "s3", "batch", "logs", "lambda" } do
      assert.is_true(os.execute("test -d " .. proc.quote(em.data_dir .. "/" .. name)) == true, name)
    end
    local _, how, code = em:stop()
    assert.are.equal("exit", how, em:log())
    assert.are.equal(0, code, em:log())
    assert.matches("TERM received", em:log())

    assert(em:restart())
    -- SIGINT, as Ctrl-C sends it
    os.execute("kill -INT " .. em.proc.pid)
    assert(proc.poll(function() return not em.proc:alive() end, 10), "still running after SIGINT")
    _, how, code = em:stop()
    assert.are.equal("exit", how)
    assert.are.equal(0, code, em:log())
    assert.matches("INT received", em:log())
  end)

  it("keeps state across a restart on the same port (signed requests from the client)", function()
    local em = assert(support_emulator.start { "--access-key", "AKIDCLI", "--secret-key", "cli-secret" })
    finally(function() em:stop() end)
    assert.are.equal("AKIDCLI", em.access_key)
    local port = em.port
    local function client(service)
      local session = aws.session { region = "us-east-1", credentials = { access_key = em.access_key, secret_key = em.secret_key } }
      return session:client(service, { endpoint_url = em.url })
    end
    local created, err1
    run(function()
      local logs = client("logs")
      created, err1 = logs:call("CreateLogGroup", { logGroupName = "/persist/me" })
      logs:close()
    end)
    if not created then
      assert.is_truthy(em:log():find("logs is not available", 1, true), tostring(err1))
      return -- the Logs service is not there yet: nothing to persist
    end
    assert(em:restart())
    assert.are.equal(port, em.port)
    local out
    run(function()
      local logs = client("logs")
      out = assert(logs:call("DescribeLogGroups", { logGroupNamePrefix = "/persist" }))
      logs:close()
    end)
    assert.are.equal("/persist/me", out.logGroups[1].logGroupName)
    -- and a wrong secret is refused by the real server too
    local res, err
    run(function()
      local session = aws.session { region = "us-east-1", credentials = { access_key = em.access_key, secret_key = "nope" } }
      local logs = session:client("logs", { endpoint_url = em.url, retries = { max_attempts = 1 } })
      res, err = logs:call("DescribeLogGroups", {})
      logs:close()
    end)
    assert.is_nil(res)
    assert.are.equal("InvalidSignatureException", err.code)
    assert.are.equal(403, err.status)
  end)

  it("refuses bad arguments with a message and a non-zero status", function()
    local bin = "lua5.4 " .. proc.quote(support_emulator.BIN)
    for _, c in ipairs {
      { "local --port 70000", "port" },
      { "local --port abc", "port" },
      { "local --throttle-rate 2", "throttle%-rate" },
      { "local --spot-rate -0.5", "spot%-rate" },
      { "local --latency x", "latency" },
      { "local --state-delay -1", "state%-delay" },
      { "local --access-key onlyone", "go together" },
      { "local --no-such-option", "unknown option" },
      { "", "command" },
      { "frobnicate", "unknown command" },
    } do
      local out, ok = sh_quiet(bin .. " " .. c[1] .. " </dev/null")
      assert.is_false(ok, c[1])
      assert.matches(c[2], out:lower(), nil, c[1] .. ": " .. out)
    end
  end)

  it("a port already in use is reported and exits 1", function()
    local em = assert(support_emulator.start {})
    finally(function() em:stop() end)
    local dir = proc.tmpdir("emcli")
    finally(function() proc.rmdir(dir) end)
    local out, ok = sh_quiet("timeout 20 lua5.4 " .. proc.quote(support_emulator.BIN) .. " local --port " .. em.port
      .. " --data-dir " .. proc.quote(dir) .. " </dev/null; echo status=$?")
    assert.is_true(ok)
    assert.matches("status=1$", out)
    assert.matches("aio%-aws local: ", out)
  end)
end)

describe("aio-aws local --lambda-concurrency", function()
  it("answers 429 TooManyRequestsException past the limit, and runs again once a slot frees", function()
    local fdir = proc.tmpdir("emconc")
    finally(function() proc.rmdir(fdir) end)
    -- a handler that says it started (a marker file) and waits for the test
    local f = assert(io.open(fdir .. "/hold.lua", "w"))
    f:write([[
local aws = require "aio_aws"
return { timeout = 30, handler = function(event)
  local m = assert(io.open(event.marker, "w")); m:close()
  for _ = 1, 1500 do
    local r = io.open(event.release)
    if r then r:close() return "released" end
    aws.sleep(0.02)
  end
  return "never released"
end }
]])
    f:close()
    local em = assert(support_emulator.start { "--lambda-concurrency", "1", functions_dir = fdir })
    finally(function() em:stop() end)
    local marker, release = fdir .. "/started", fdir .. "/release"
    local first, second, third = run(function()
      local s = assert(aws.session { region = em.region, config = { env = {} },
        credentials = { access_key = em.access_key, secret_key = em.secret_key } })
      local lam = assert(s:client("lambda", { endpoint_url = em.url, retries = { max_attempts = 1 } }))
      local payload = cjson.encode({ marker = marker, release = release })
      local t = aws.spawn(function() return lam:invoke { FunctionName = "hold", Payload = payload } end)
      for _ = 1, 1500 do
        if io.open(marker) then break end
        aws.sleep(0.01)
      end
      local _, err = lam:invoke { FunctionName = "hold", Payload = payload }
      local rf = assert(io.open(release, "w")); rf:close()
      local out1 = t:wait()
      local out3 = lam:invoke { FunctionName = "hold", Payload = payload }
      return out1, err, out3
    end)
    assert.equal(200, first.StatusCode)
    assert.equal('"released"', first.Payload)
    assert.equal("TooManyRequestsException", second.code)
    assert.equal(429, second.status)
    assert.equal(200, third.StatusCode)
  end)

  it("refuses a limit that is not a positive integer", function()
    local out = proc.sh("timeout 20 lua5.4 " .. proc.quote(support_emulator.BIN)
      .. " local --port 0 --lambda-concurrency 0 --data-dir /nonexistent-aio 2>&1 </dev/null; echo status=$?")
    assert.matches("%-%-lambda%-concurrency must be an integer >= 1", out)
    assert.matches("status=[12]$", out)
  end)
end)

-- Leave no collectable sockets behind for the next spec file.
teardown(function()
  collectgarbage()
  collectgarbage()
end)
