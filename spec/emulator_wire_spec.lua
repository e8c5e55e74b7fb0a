-- emulator/wire.lua: the server side of the json and rest-json protocols.
-- Two independent checks:
--  * botocore (Debian's /usr/bin/python3): requests serialized by
--    botocore.serialize decode into the parameters botocore was given, and
--    responses encoded here parse in botocore.parsers into the output we
--    encoded (errors: code, message and modeled members);
--  * the client's own protocol layer: protocol.build -> wire.decode and
--    wire.encode -> protocol.parse give back what went in.
local cjson = require "cjson"
local model = require "aio_aws.model"
local protocol = require "aio_aws.protocol"
local wire = require "aio_aws.emulator.wire"
local proc = require "support.proc"

local PYTHON = "/usr/bin/python3"

-- botocore side: {kind = "serialize", service, operation, params} ->
-- {method, path, query, headers, body_b64}; {kind = "parse", service,
-- operation, status, headers, body_b64} -> the parsed dict (bytes as
-- {"__bytes": base64}, datetimes as epoch seconds). Params come as JSON:
-- {"__bytes": base64} for blobs, numbers for timestamps.
local ORACLE = [==[
import base64, datetime, json, sys
import botocore.session
from botocore import serialize, parsers
from botocore.utils import percent_encode_sequence
from botocore.awsrequest import HeadersDict

def unjson(v):
    if isinstance(v, dict):
        if set(v) == {"__bytes"}:
            return base64.b64decode(v["__bytes"])
        return {k: unjson(x) for k, x in v.items()}
    if isinstance(v, list):
        return [unjson(x) for x in v]
    return v

def tojson(v):
    if isinstance(v, (bytes, bytearray)):
        return {"__bytes": base64.b64encode(bytes(v)).decode()}
    if hasattr(v, "read"):
        return {"__bytes": base64.b64encode(v.read()).decode()}
    if isinstance(v, datetime.datetime):
        return v.timestamp()
    if isinstance(v, dict):
        return {k: tojson(x) for k, x in v.items()}
    if isinstance(v, list):
        return [tojson(x) for x in v]
    return v

session = botocore.session.get_session()
models = {}
def service_model(name):
    if name not in models:
        models[name] = session.get_service_model(name)
    return models[name]

out = []
for case in json.load(sys.stdin):
    sm = service_model(case["service"])
    op = sm.operation_model(case["operation"])
    proto = sm.metadata["protocol"]
    if case["kind"] == "serialize":
        req = serialize.create_serializer(proto, True).serialize_to_request(unjson(case["params"]), op)
        body = req["body"]
        if isinstance(body, str):
            body = body.encode()
        out.append({"method": req["method"], "path": req["url_path"],
                    "query": percent_encode_sequence(req["query_string"]) if req["query_string"] else "",
                    "headers": {k.lower(): v for k, v in req["headers"].items()},
                    "body_b64": base64.b64encode(body or b"").decode()})
    else:
        resp = {"status_code": case["status"], "headers": case["headers"],
                "body": base64.b64decode(case["body_b64"])}
        resp["headers"] = HeadersDict(case["headers"])  # case-insensitive, as botocore's endpoint gives them
        parser = parsers.create_parser(proto)
        parsed = parser.parse(resp, op.output_shape)
        code = parsed.get("Error", {}).get("Code")
        if code:  # botocore.client._add_modeled_error_fields
            error_shape = sm.shape_for_error_code(code)
            if error_shape is not None:
                parsed.update(parser.parse(resp, error_shape))
        parsed.pop("ResponseMetadata", None)
        out.append(tojson(parsed))
json.dump(out, sys.stdout)
]==]

local function have_botocore()
  return os.execute(PYTHON .. " -c 'import botocore.serialize' >/dev/null 2>&1") == true
end

local function b64(s) return require("aio_aws.core").base64_encode(s) end
local function unb64(s) return require("aio_aws.core").base64_decode(s) end

-- Run the oracle over cases.
local function botocore(cases)
  local dir = proc.tmpdir("wire")
  local script, input = dir .. "/oracle.py", dir .. "/in.json"
  local f = assert(io.open(script, "w")); f:write(ORACLE); f:close()
  f = assert(io.open(input, "w")); f:write(cjson.encode(cases)); f:close()
  local out, ok = proc.sh(PYTHON .. " " .. proc.quote(script) .. " < " .. proc.quote(input) .. " 2>&1")
  proc.rmdir(dir)
  assert(ok, out)
  return cjson.decode(out)
end

-- Blobs travel through JSON as {__bytes = base64}.
local BLOB = {}
local function blob(s) return setmetatable({ s }, BLOB) end
local function to_py(v)
  if getmetatable(v) == BLOB then return { __bytes = b64(v[1]) } end
  if type(v) == "table" then
    local t = {}
    for k, x in pairs(v) do t[k] = to_py(x) end
    return t
  end
  return v
end
local function plain(v)
  if getmetatable(v) == BLOB then return v[1] end
  if type(v) == "table" then
    local t = {}
    for k, x in pairs(v) do t[k] = plain(x) end
    return t
  end
  return v
end
local function from_py(v)
  if type(v) == "table" then
    if v.__bytes then return unb64(v.__bytes) end
    local t = {}
    for k, x in pairs(v) do t[k] = from_py(x) end
    return t
  end
  return v
end

-- Numbers compare by value (JSON has no integer type).
local function same(a, b, where)
  where = where or "value"
  if type(a) == "number" and type(b) == "number" then
    assert(math.abs(a - b) < 1e-6, where .. ": " .. tostring(a) .. " ~= " .. tostring(b))
    return
  end
  assert(type(a) == type(b), where .. ": " .. type(a) .. " ~= " .. type(b) .. " (" .. tostring(a) .. ", " .. tostring(b) .. ")")
  if type(a) ~= "table" then
    assert(a == b, where .. ": " .. tostring(a) .. " ~= " .. tostring(b))
    return
  end
  for k, v in pairs(a) do same(v, b[k], where .. "." .. tostring(k)) end
  for k in pairs(b) do assert(a[k] ~= nil, where .. "." .. tostring(k) .. " unexpected") end
end

local function request_of(r)
  return { method = r.method, path = r.path, query = r.query, headers = r.headers, body = unb64(r.body_b64) }
end

-- Requests: {service, operation, params}
local REQUESTS = {
  { "batch", "SubmitJob", {
    jobName = "job-1", jobQueue = "q", jobDefinition = "def:3",
    arrayProperties = { size = 4 },
    dependsOn = { { jobId = "abc", type = "SEQUENTIAL" } },
    parameters = { p1 = "v1", ["with space"] = "x y" },
    containerOverrides = { command = { "echo", "Ref::p1", "ü" }, environment = { { name = "A", value = "1" } },
      resourceRequirements = { { type = "VCPU", value = "2" } } },
    retryStrategy = { attempts = 3 }, timeout = { attemptDurationSeconds = 120 },
    tags = { team = "x" }, propagateTags = true, schedulingPriorityOverride = 5,
  } },
  { "batch", "ListJobs", { jobQueue = "q", jobStatus = "RUNNING", maxResults = 10, nextToken = "tok",
    filters = { { name = "JOB_NAME", values = { "job*" } } } } },
  { "batch", "ListTagsForResource", { resourceArn = "arn:aws:batch:us-east-1:123456789012:job/a b%c" } },
  { "batch", "UntagResource", { resourceArn = "arn:aws:batch:us-east-1:123456789012:job-queue/q", tagKeys = { "a", "b c", "d&e" } } },
  { "batch", "DescribeJobs", { jobs = { "1", "2" } } },
  { "batch", "DescribeComputeEnvironments", {} },
  { "logs", "PutLogEvents", { logGroupName = "/aws/batch/job", logStreamName = "d/default/1",
    logEvents = { { timestamp = 1700000000123, message = "hello \"world\"\n" }, { timestamp = 1700000000124, message = "ü" } },
    sequenceToken = "49" } },
  { "logs", "GetLogEvents", { logGroupName = "g", logStreamName = "s", startTime = 1, endTime = 1700000000000,
    startFromHead = true, limit = 5, nextToken = "f/123" } },
  { "logs", "FilterLogEvents", { logGroupName = "g", logStreamNames = { "a", "b" }, filterPattern = "\"a phrase\" term",
    interleaved = true } },
  { "logs", "DescribeLogGroups", {} },
  { "lambda", "Invoke", { FunctionName = "my-fn", InvocationType = "RequestResponse", LogType = "Tail",
    ClientContext = b64('{"custom":1}'), Qualifier = "$LATEST", Payload = blob('{"k": [1, 2, "\0bin"]}') } },
  { "lambda", "Invoke", { FunctionName = "arn:aws:lambda:us-east-1:123456789012:function:f:v1" } },
  { "lambda", "GetFunction", { FunctionName = "f", Qualifier = "1" } },
  { "lambda", "ListFunctions", { MaxItems = 5, Marker = "m+/=", FunctionVersion = "ALL", MasterRegion = "ALL" } },
  { "lambda", "ListFunctions", {} },
  { "lambda", "PutFunctionEventInvokeConfig", { FunctionName = "f", MaximumRetryAttempts = 1,
    MaximumEventAgeInSeconds = 600, DestinationConfig = { OnFailure = { Destination = "arn:aws:sqs:x" } } } },
}

-- Outputs: {service, operation, output}
local OUTPUTS = {
  { "batch", "SubmitJob", { jobArn = "arn:aws:batch:us-east-1:123456789012:job/1", jobName = "j", jobId = "1" } },
  { "batch", "DescribeJobs", { jobs = { {
    jobArn = "arn:1", jobName = "j", jobId = "1", jobQueue = "q", status = "FAILED", statusReason = "Essential container in task exited",
    createdAt = 1700000000123, startedAt = 1700000001000, stoppedAt = 1700000002000, jobDefinition = "arn:def:1",
    dependsOn = { { jobId = "0", type = "N_TO_N" } }, parameters = { a = "b" }, tags = {},
    attempts = { { container = { exitCode = 3, logStreamName = "d/default/x", reason = "r" }, startedAt = 1, stoppedAt = 2,
      statusReason = "Essential container in task exited" } },
    container = { command = { "sh", "-c", "exit 3" }, environment = { { name = "A", value = "1" } }, exitCode = 3,
      logStreamName = "d/default/x", vcpus = 1, memory = 128 },
    arrayProperties = { statusSummary = { SUCCEEDED = 2 }, size = 2 },
    timeout = { attemptDurationSeconds = 60 }, retryStrategy = { attempts = 2 },
  } } } },
  { "batch", "ListJobs", { jobSummaryList = { { jobId = "1", jobName = "n", createdAt = 5, status = "RUNNING" } }, nextToken = "t" } },
  { "batch", "DescribeComputeEnvironments", { computeEnvironments = {} } },
  { "logs", "PutLogEvents", { nextSequenceToken = "50", rejectedLogEventsInfo = { tooOldLogEventEndIndex = 2 } } },
  { "logs", "GetLogEvents", { events = { { timestamp = 1700000000123, message = "m\t\"q\"", ingestionTime = 1700000000200 } },
    nextForwardToken = "f/00000000000000000000000000000000000000000000000000000001", nextBackwardToken = "b/1" } },
  { "logs", "DescribeLogGroups", { logGroups = { { logGroupName = "/g", creationTime = 1700000000000, arn = "arn:aws:logs:x",
    storedBytes = 0, metricFilterCount = 0 } } } },
  { "lambda", "Invoke", { StatusCode = 200, FunctionError = "Unhandled", LogResult = b64("START\nEND\n"),
    Payload = blob('{"errorMessage":"boom","errorType":"Error"}'), ExecutedVersion = "$LATEST" } },
  { "lambda", "Invoke", { StatusCode = 202 } },
  { "lambda", "GetFunction", { Configuration = { FunctionName = "f", FunctionArn = "arn:aws:lambda:us-east-1:123456789012:function:f",
    Runtime = "provided", Timeout = 3, MemorySize = 128, LastModified = "2026-01-01T00:00:00.000+0000", State = "Active",
    Environment = { Variables = { A = "1" } } }, Code = { RepositoryType = "S3", Location = "file:///x" }, Tags = { t = "v" } } },
  { "lambda", "ListFunctions", { Functions = { { FunctionName = "a" }, { FunctionName = "b", Timeout = 30 } }, NextMarker = "b" } },
  { "lambda", "GetFunctionEventInvokeConfig", { FunctionArn = "arn:f", LastModified = 1700000000.5, MaximumRetryAttempts = 0 } },
}

-- Errors: {service, operation, err, expected modeled fields}
local ERRORS = {
  { "batch", "SubmitJob", { code = "ClientException", message = "Job queue q not found", status = 400 } },
  { "logs", "GetLogEvents", { code = "ResourceNotFoundException", message = "The specified log group does not exist.", status = 400 } },
  { "logs", "PutLogEvents", { code = "ThrottlingException", message = "Rate exceeded", status = 400 } },
  { "lambda", "Invoke", { code = "ResourceNotFoundException", message = "Function not found: arn:x", status = 404,
    fields = { Type = "User" } } },
  { "lambda", "Invoke", { code = "TooManyRequestsException", message = "Rate Exceeded.", status = 429,
    fields = { Type = "User", Reason = "ConcurrentInvocationLimitExceeded", retryAfterSeconds = "2" } } },
  { "lambda", "Invoke", { code = "RequestTooLargeException", message = "Request must be smaller than 6291456 bytes", status = 413,
    fields = { Type = "User" } } },
}

local models = {}
local function svc(name)
  models[name] = models[name] or assert(model.load(name))
  return models[name]
end

describe("emulator wire", function()
  describe("against botocore", function()
    local ok = have_botocore()
    if not ok then
      pending("no botocore in /usr/bin/python3")
      return
    end

    it("decodes the requests botocore serializes into botocore's parameters", function()
      local cases = {}
      for i, c in ipairs(REQUESTS) do
        cases[i] = { kind = "serialize", service = c[1], operation = c[2], params = to_py(c[3]) }
      end
      local got = botocore(cases)
      for i, c in ipairs(REQUESTS) do
        local req = request_of(got[i])
        local op, params = wire.decode(svc(c[1]), req)
        assert(op, c[2] .. ": " .. tostring(params and params.message))
        assert.are.equal(c[2], op.name)
        same(plain(c[3]), params, c[1] .. "." .. c[2])
      end
    end)

    it("encodes outputs that botocore parses back to the same values", function()
      local cases = {}
      local encoded = {}
      for i, c in ipairs(OUTPUTS) do
        local s = svc(c[1])
        local res = wire.encode(s, s:operation(c[2]), plain(c[3]), "req-" .. i)
        assert(res.status < 300, c[2] .. ": " .. tostring(res.body))
        encoded[i] = res
        cases[i] = { kind = "parse", service = c[1], operation = c[2], status = res.status,
          headers = res.headers, body_b64 = b64(res.body or "") }
      end
      local got = botocore(cases)
      for i, c in ipairs(OUTPUTS) do
        local parsed = from_py(got[i])
        -- botocore always fills a blob payload member, b"" for an empty body
        if c[3].Payload == nil and parsed.Payload == "" then parsed.Payload = nil end
        same(plain(c[3]), parsed, c[1] .. "." .. c[2])
        assert.are.equal("req-" .. i, encoded[i].headers["x-amzn-requestid"])
      end
    end)

    it("encodes errors botocore reads: code, message, status and modeled members", function()
      local cases = {}
      for i, c in ipairs(ERRORS) do
        local s = svc(c[1])
        local res = wire.encode_error(s, c[3], "rid")
        cases[i] = { kind = "parse", service = c[1], operation = c[2], status = res.status,
          headers = res.headers, body_b64 = b64(res.body) }
        assert.are.equal(c[3].status, res.status)
        assert.are.equal(c[3].code, res.headers["x-amzn-errortype"])
      end
      local got = botocore(cases)
      for i, c in ipairs(ERRORS) do
        local e = got[i].Error
        assert.are.equal(c[3].code, e.Code)
        assert.are.equal(c[3].message, e.Message)
        for k, v in pairs(c[3].fields or {}) do
          if k ~= "retryAfterSeconds" then assert.are.equal(v, got[i][k], k) end
        end
      end
    end)
  end)

  describe("against the client's protocol layer", function()
    it("decodes what protocol.build makes", function()
      for _, c in ipairs(REQUESTS) do
        local s = svc(c[1])
        local r = assert(protocol.build(s, c[2], plain(c[3])))
        local req = { method = r.method, path = r.path, query = protocol.encode_query(r.query),
          headers = r.headers, body = r.body or "" }
        local op, params = wire.decode(s, req)
        assert(op, tostring(params and params.message))
        assert.are.equal(c[2], op.name)
        same(plain(c[3]), params, c[1] .. "." .. c[2])
      end
    end)

    it("encodes what protocol.parse reads back", function()
      for _, c in ipairs(OUTPUTS) do
        local s = svc(c[1])
        local res = wire.encode(s, s:operation(c[2]), plain(c[3]), "rid-x")
        local out = assert(protocol.parse(s, c[2], res))
        assert.are.equal("rid-x", out.ResponseMetadata.RequestId)
        out.ResponseMetadata = nil
        same(plain(c[3]), out, c[1] .. "." .. c[2])
      end
    end)

    it("encodes errors protocol.parse reads back with their fields", function()
      for _, c in ipairs(ERRORS) do
        local s = svc(c[1])
        local res = wire.encode_error(s, c[3], "rid-e")
        local out, err = protocol.parse(s, c[2], res)
        assert.is_nil(out)
        assert.are.equal(c[3].code, err.code)
        assert.are.equal(c[3].message, err.message)
        assert.are.equal(c[3].status, err.status)
        assert.are.equal("rid-e", err.request_id)
        for k, v in pairs(c[3].fields or {}) do
          if k == "retryAfterSeconds" then
            assert.are.equal(v, res.headers["retry-after"])
          else
            assert.are.equal(v, err[k], k)
          end
        end
      end
    end)
  end)

  describe("bad input", function()
    local logs, lambda, batch
    setup(function() logs, lambda, batch = svc("logs"), svc("lambda"), svc("batch") end)

    local function json_req(target, body)
      return { method = "POST", path = "/", query = "", headers = { ["x-amz-target"] = target,
        ["content-type"] = "application/x-amz-json-1.1" }, body = body }
    end

    it("an unknown or missing X-Amz-Target is UnknownOperationException", function()
      for _, t in ipairs { "Logs_20140328.NoSuchOp", "Other_1.PutLogEvents", "Logs_20140328.put_log_events" } do
        local op, err = wire.decode(logs, json_req(t, "{}"))
        assert.is_nil(op)
        assert.are.equal("UnknownOperationException", err.code)
        assert.are.equal(400, err.status)
      end
      local req = json_req(nil, "{}")
      local op, err = wire.decode(logs, req)
      assert.is_nil(op)
      assert.are.equal("UnknownOperationException", err.code)
    end)

    it("malformed bodies and wrong member types are SerializationException", function()
      for _, body in ipairs { "{", "[1]", "\"s\"", '{"logGroupName": 5}', '{"limit": "x", "logGroupName": "g"}',
        '{"startFromHead": "yes"}' } do
        local op, err = wire.decode(logs, json_req("Logs_20140328.GetLogEvents", body))
        assert.is_nil(op, body)
        assert.are.equal("SerializationException", err.code, body)
      end
      local op, err = wire.decode(batch, { method = "POST", path = "/v1/submitjob", query = "", headers = {},
        body = '{"arrayProperties": {"size": "four"}}' })
      assert.is_nil(op)
      assert.are.equal("SerializationException", err.code)
    end)

    it("an empty json body is an empty input", function()
      local op, params = wire.decode(logs, json_req("Logs_20140328.DescribeLogGroups", ""))
      assert.are.equal("DescribeLogGroups", op.name)
      assert.are.same({}, params)
    end)

    it("a rest-json path or method no operation has is a 404 UnknownOperationException", function()
      for _, r in ipairs { { "GET", "/v1/submitjob" }, { "POST", "/v1/nope" }, { "POST", "/2015-03-31/functions/f/invocations/x" } } do
        local s = r[2]:find("^/v1") and batch or lambda
        local op, err = wire.decode(s, { method = r[1], path = r[2], query = "", headers = {}, body = "" })
        assert.is_nil(op)
        assert.are.equal("UnknownOperationException", err.code)
        assert.are.equal(404, err.status)
      end
    end)

    it("bad header and query values are SerializationException", function()
      local op, err = wire.decode(lambda, { method = "GET", path = "/2015-03-31/functions/", query = "MaxItems=many",
        headers = {}, body = "" })
      assert.is_nil(op)
      assert.are.equal("SerializationException", err.code)
    end)

    it("an output that does not fit the model is a 500 naming the problem", function()
      local res = wire.encode(logs, logs:operation("GetLogEvents"), { events = { { timestamp = "noon" } } }, "r")
      assert.are.equal(500, res.status)
      assert.are.equal("InternalFailure", res.headers["x-amzn-errortype"])
      assert.matches("GetLogEvents", cjson.decode(res.body).message)
      res = wire.encode(batch, batch:operation("SubmitJob"), { jobId = "1", extra = true }, "r")
      assert.are.equal(500, res.status)
      assert.matches("extra", cjson.decode(res.body).message)
    end)

    it("unmodeled error codes still carry __type, message and the request id", function()
      local res = wire.encode_error(batch, { code = "SomethingElse", message = "m" }, "rid")
      assert.are.equal(400, res.status)
      assert.are.same({ __type = "SomethingElse", message = "m" }, cjson.decode(res.body))
      assert.are.equal("rid", res.headers["x-amzn-requestid"])
    end)

    it("misuse raises", function()
      assert.has_error(function() wire.decode(nil, {}) end)
      assert.has_error(function() wire.decode(logs, nil) end)
      assert.has_error(function() wire.encode(logs, nil, {}, "r") end)
      assert.has_error(function() wire.encode_error(logs, { message = "no code" }, "r") end)
      assert.has_error(function() wire.decode(svc("s3"), { method = "GET", path = "/", headers = {} }) end)
    end)
  end)
end)
