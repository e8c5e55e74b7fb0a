-- Conformance of aio_aws.protocol against the AWS protocol test suites as
-- botocore ships them (../shared/testdata/protocols, read in place), plus
-- the project's own cases in spec/fixtures/protocol/ (same format).
--
-- Comparisons follow botocore's tests/unit/test_protocols.py:
--  * method and URI exactly (the query string may list its pairs in another
--    order only when the suite's own order cannot be known: it is then
--    compared as a sorted list of pairs, and counted as passed);
--  * expected headers present with the same value (query/ec2 Content-Type
--    gets "; charset=utf-8" appended, as botocore's runner does),
--    forbidden headers absent; Content-Length is the transport's job: a
--    required one means the body is a string, a forbidden one means no body;
--  * bodies: JSON structurally, XML canonically (insignificant whitespace
--    dropped), query/ec2 as sorted pairs, anything else as bytes;
--  * outputs: ResponseMetadata left out, special floats as the strings
--    "NaN"/"Infinity"/"-Infinity"; errors: code, message when the case gives
--    one, and each modeled member.
-- Skips: botocore's protocol-tests-ignore-list.json, plus SKIP below.
local json = require "aio_aws.model.json"
local model = require "aio_aws.model"
local protocol = require "aio_aws.protocol"

local SHARED = "../shared/testdata/protocols"
local FIXTURES = "spec/fixtures/protocol"
local TOKEN = "00000000-0000-4000-8000-000000000000"

-- Cases skipped here beyond botocore's list, with the reason.
local SKIP = {
  -- requestcompression (gzip of the body) is applied by a later pipeline
  -- stage, not by the serializer (botocore does it in a handler too); these
  -- suites are in botocore's general ignore list already.
}

local FILES = { "json", "json_1_0", "rest-json", "rest-xml", "query", "ec2", "json_1_0-query-compatible" }

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function load_json(path)
  local text = read(path)
  if not text then return nil end
  return assert(json.decode(text, { order = true }))
end

local have_shared = read(SHARED .. "/README.md") ~= nil
local ignore = have_shared and load_json(SHARED .. "/protocol-tests-ignore-list.json") or {}

local function ignored(proto, direction, suite, case_id)
  local function hit(list)
    if not list then return false end
    for _, s in ipairs(list.suites or {}) do if s == suite then return true end end
    for _, c in ipairs(list.cases or {}) do if c == case_id then return true end end
    return false
  end
  local general = ignore.general and ignore.general[direction]
  local per = ignore.protocols and ignore.protocols[proto] and ignore.protocols[proto][direction]
  return hit(general) or hit(per)
end

-- ---------------------------------------------------------------- helpers

local null = json.null

local function special(v)
  if type(v) == "number" then
    if v ~= v then return "NaN" end
    if v == math.huge then return "Infinity" end
    if v == -math.huge then return "-Infinity" end
  end
  return v
end

-- structural equality; numbers by value; ORDER bookkeeping ignored;
-- a JSON null on the expected side matches an absent value
local function deep_eq(a, b, path)
  a, b = special(a), special(b)
  if type(a) == "table" and type(b) == "table" then
    for k, v in pairs(a) do
      if k ~= json.ORDER then
        local ok, where = deep_eq(v, b[k], path .. "." .. tostring(k))
        if not ok then return false, where end
      end
    end
    for k, v in pairs(b) do
      if k ~= json.ORDER and a[k] == nil and v ~= null then return false, path .. "." .. tostring(k) .. " missing" end
    end
    return true
  end
  if a == b then return true end
  if (a == nil and b == null) or (a == null and b == nil) then return true end
  if type(a) == "number" and type(b) == "number" and math.abs(a - b) < 1e-9 * math.max(1, math.abs(a)) then
    return true
  end
  return false, string.format("%s: %s ~= %s", path, tostring(a), tostring(b))
end

local function dump(v, ind)
  ind = ind or ""
  if type(v) ~= "table" then return type(v) == "string" and string.format("%q", v) or tostring(special(v)) end
  local keys = {}
  for k in pairs(v) do if k ~= json.ORDER then keys[#keys + 1] = k end end
  table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = ind .. "  " .. tostring(k) .. " = " .. dump(v[k], ind .. "  ") end
  return "{\n" .. table.concat(out, "\n") .. "\n" .. ind .. "}"
end

local xml_decode
local function canon_xml(text)
  xml_decode = xml_decode or require("aio_aws.core").xml_decode
  local node, root = xml_decode(text, "sequence")
  if node == nil then return nil end
  local function c(name, n)
    if type(n) == "string" then return "<" .. name .. ">" .. (n:gsub("^%s+", ""):gsub("%s+$", "")) .. "</" .. name .. ">" end
    local attrs = {}
    for k, v in pairs(n._attr or {}) do attrs[#attrs + 1] = k .. '="' .. v .. '"' end
    table.sort(attrs)
    local parts = { "<" .. name .. (#attrs > 0 and (" " .. table.concat(attrs, " ")) or "") .. ">" }
    if n._text then parts[#parts + 1] = (n._text:gsub("^%s+", ""):gsub("%s+$", "")) end
    for i = 1, #n, 2 do parts[#parts + 1] = c(n[i], n[i + 1]) end
    parts[#parts + 1] = "</" .. name .. ">"
    return table.concat(parts)
  end
  return c(root, node)
end

local function unpct(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function pairs_of(q)
  local out = {}
  for item in string.gmatch(q or "", "[^&]+") do out[#out + 1] = item end
  table.sort(out)
  return table.concat(out, "&")
end

local function lower_keys(t)
  local out = {}
  for k, v in pairs(t or {}) do
    if k ~= json.ORDER then out[string.lower(k)] = v end
  end
  return out
end

local function service_for(suite, case)
  local ops = { [case.given.name] = case.given }
  return model.new({ metadata = suite.metadata, shapes = suite.shapes, operations = ops },
    { name = "conformance" })
end

-- ---------------------------------------------------------------- runners

local function check_input(proto, suite, case)
  local svc = service_for(suite, case)
  local req, err = protocol.build(svc, case.given.name, case.params,
    { idempotency_token = function() return TOKEN end })
  if not req then return false, "build failed: " .. tostring(err) end
  local ser = case.serialized
  if ser.method and req.method ~= ser.method then
    return false, "method " .. tostring(req.method) .. " ~= " .. ser.method
  end
  local uri = protocol.url_path(req)
  if ser.uri and uri ~= ser.uri then
    local ap, aq = uri:match("^([^?]*)%??(.*)$")
    local ep, eq = ser.uri:match("^([^?]*)%??(.*)$")
    if ap ~= ep or pairs_of(unpct(aq)) ~= pairs_of(unpct(eq)) then
      return false, "uri " .. uri .. " ~= " .. ser.uri
    end
    if os.getenv("AIO_PROTOCOL_DEBUG") then io.stderr:write("query order differs: ", case.id, "\n") end
  end
  local headers = lower_keys(req.headers)
  for k, v in pairs(lower_keys(ser.headers)) do
    if (proto == "query" or proto == "ec2") and k == "content-type" then v = v .. "; charset=utf-8" end
    if k == "content-length" then
      if type(req.body) ~= "string" then return false, "Content-Length expected but body is not a string" end
    elseif headers[k] ~= v then
      return false, string.format("header %s: %s ~= %s", k, tostring(headers[k]), v)
    end
  end
  for _, k in ipairs(ser.forbidHeaders or {}) do
    k = string.lower(k)
    if k == "content-length" then
      if req.body ~= nil and req.body ~= "" then return false, "a body is sent where Content-Length is forbidden" end
    elseif headers[k] ~= nil then
      return false, "forbidden header present: " .. k
    end
  end
  for _, k in ipairs(ser.requireHeaders or {}) do
    k = string.lower(k)
    if k == "content-length" then
      if type(req.body) ~= "string" then return false, "Content-Length required but the body is not a string" end
    elseif headers[k] == nil then
      return false, "required header missing: " .. k
    end
  end
  if ser.body ~= nil then
    local actual = req.body or ""
    local expected = ser.body
    if proto == "json" or proto == "json_1_0" or proto == "rest-json" or proto == "json_1_0-query-compatible" then
      local a, e = json.decode(actual), json.decode(expected)
      if a ~= nil and e ~= nil then
        local ok, where = deep_eq(a, e, "body")
        if not ok then return false, "JSON body differs at " .. where .. "\nactual:   " .. actual .. "\nexpected: " .. expected end
      elseif actual ~= expected then
        return false, "body " .. actual .. " ~= " .. expected
      end
    elseif proto == "rest-xml" then
      local a, e = canon_xml(actual), canon_xml(expected)
      if e and a ~= e then return false, "XML body\nactual:   " .. tostring(a) .. "\nexpected: " .. e end
      if not e and actual ~= expected then return false, "body " .. actual .. " ~= " .. expected end
    elseif proto == "query" or proto == "ec2" then
      if pairs_of(actual) ~= pairs_of(expected) then
        return false, "form body\nactual:   " .. actual .. "\nexpected: " .. expected
      end
    elseif actual ~= expected then
      return false, "body " .. actual .. " ~= " .. expected
    end
  end
  if ser.host then
    local host = (suite.clientEndpoint or "https://example.com"):match("^%a+://([^/]+)")
    local actual = (req.host_prefix or "") .. host
    if actual ~= ser.host then return false, "host " .. actual .. " ~= " .. ser.host end
  end
  return true
end

local function check_output(proto, suite, case)
  local svc = service_for(suite, case)
  local r = case.response
  local response = { status = math.tointeger(r.status_code), headers = lower_keys(r.headers), body = r.body or "" }
  local out, err = protocol.parse(svc, case.given.name, response)
  if case.error or case.errorCode then
    if out then return false, "expected an error, got\n" .. dump(out) end
    if err.code ~= (case.errorCode or "") then return false, "error code " .. tostring(err.code) .. " ~= " .. tostring(case.errorCode) end
    if case.errorMessage and err.message ~= case.errorMessage then
      return false, "error message " .. tostring(err.message) .. " ~= " .. case.errorMessage
    end
    for k, v in pairs(case.error or {}) do
      if k ~= json.ORDER then
        local ok, where = deep_eq(err[k], v, "error." .. k)
        if not ok then return false, where end
      end
    end
    return true
  end
  if not out then return false, "parse failed: " .. tostring(err) end
  out.ResponseMetadata = nil
  local ok, where = deep_eq(out, case.result or {}, "result")
  if not ok then return false, where .. "\nactual: " .. dump(out) end
  return true
end

-- ---------------------------------------------------------------- the spec

local counts = {}
local function count(source, proto, direction, what)
  local key = (source == "aws" and "AWS suite " or "own fixtures ") .. proto .. " " .. direction
  local c = counts[key]
  if not c then
    c = { passed = 0, skipped = 0, failed = 0, ignored_passed = 0 }
    counts[key] = c
    counts[#counts + 1] = key
  end
  c[what] = c[what] + 1
end

local function run_file(path, proto, direction, source)
  local suites = load_json(path)
  if not suites then return end
  describe(source .. " " .. direction .. "/" .. proto, function()
    for _, suite in ipairs(suites) do
      for _, case in ipairs(suite.cases) do
        local title = case.id .. " (" .. suite.description .. ")"
        local skip = SKIP[case.id]
        if not skip and source == "aws" and ignored(proto, direction, suite.description, case.id) then
          -- botocore skips it; run it anyway and skip only when it fails
          local good, ok, msg = pcall(direction == "input" and check_input or check_output, proto, suite, case)
          if good and ok then
            count(source, proto, direction, "ignored_passed")
          else
            skip = "botocore protocol-tests-ignore-list; here: " .. tostring(good and msg or ok):gsub("\n.*", "")
          end
        end
        if skip then
          count(source, proto, direction, "skipped")
          pending(title .. ": " .. skip)
        else
          it(title, function()
            local ok, msg
            local good, e = pcall(function()
              if direction == "input" then ok, msg = check_input(proto, suite, case)
              else ok, msg = check_output(proto, suite, case) end
            end)
            if not good then ok, msg = false, tostring(e) end
            count(source, proto, direction, ok and "passed" or "failed")
            assert(ok, msg)
          end)
        end
      end
    end
  end)
end

describe("protocol conformance", function()
  if not have_shared then
    pending("../shared/testdata/protocols is absent: running the project's own fixtures only")
  end
  for _, direction in ipairs({ "input", "output" }) do
    for _, proto in ipairs(FILES) do
      if have_shared then run_file(SHARED .. "/" .. direction .. "/" .. proto .. ".json", proto, direction, "aws") end
      run_file(FIXTURES .. "/" .. direction .. "/" .. proto .. ".json", proto, direction, "own")
    end
  end

  teardown(function()
    local lines, tp, ts, tf = {}, 0, 0, 0
    for _, key in ipairs(counts) do
      local c = counts[key]
      lines[#lines + 1] = string.format("  %-50s %4d passed %3d skipped %3d failed%s", key, c.passed, c.skipped, c.failed,
        c.ignored_passed > 0 and string.format("  (%d passed on botocore's ignore list)", c.ignored_passed) or "")
      tp, ts, tf = tp + c.passed, ts + c.skipped, tf + c.failed
    end
    if not have_shared then lines[#lines + 1] = "  (AWS suites absent: " .. SHARED .. " not found; own fixtures only)" end
    io.write("\nprotocol conformance:\n", table.concat(lines, "\n"),
      string.format("\nprotocol conformance total: %d passed, %d skipped, %d failed\n", tp, ts, tf))
  end)
end)

describe("protocol API", function()
  local errors = require "aio_aws.errors"

  local function svc(name) return assert(model.load(name)) end

  it("builds requests for the bundled models", function()
    local s3 = svc("s3")
    local req = assert(protocol.build(s3, "put_object", { Bucket = "b", Key = "a/b c+d", Body = "x", Metadata = { k = "v" } }))
    assert.equal("PUT", req.method)
    assert.equal("/b/a/b%20c%2Bd", req.path)
    assert.equal("x", req.body)
    assert.equal("v", req.headers["x-amz-meta-k"])
    req = assert(protocol.build(s3, "ListObjectsV2", { Bucket = "b", Prefix = "p/" }))
    assert.equal("/b?list-type=2&prefix=p%2F", protocol.url_path(req))
    local logs = svc("logs")
    req = assert(protocol.build(logs, "GetLogEvents", { logGroupName = "g", logStreamName = "s", startFromHead = true }))
    assert.equal("Logs_20140328.GetLogEvents", req.headers["x-amz-target"])
    assert.equal("application/x-amz-json-1.1", req.headers["content-type"])
    assert.same({ logGroupName = "g", logStreamName = "s", startFromHead = true }, json.decode(req.body))
    local sqs = svc("sqs")
    req = assert(protocol.build(sqs, "SendMessage", { QueueUrl = "q", MessageBody = "m" }))
    assert.equal("Action=SendMessage&Version=2012-11-05&QueueUrl=q&MessageBody=m", req.body)
    local ddb = svc("dynamodb")
    req = assert(protocol.build(ddb, "PutItem", { TableName = "t", Item = { id = { S = "1" }, n = { N = "2" }, l = { L = {} } } }))
    assert.same({ TableName = "t", Item = { id = { S = "1" }, n = { N = "2" }, l = { L = {} } } }, json.decode(req.body))
    assert.truthy(req.body:find('"L":[]', 1, true))
    req = assert(protocol.build(svc("lambda"), "Invoke", { FunctionName = "f", Payload = "{}" }))
    assert.equal("/2015-03-31/functions/f/invocations", req.path)
    req = assert(protocol.build(svc("sts"), "GetCallerIdentity"))
    assert.equal("Action=GetCallerIdentity&Version=2011-06-15", req.body)
  end)

  it("passes a streaming body through unchanged", function()
    local stream = setmetatable({}, { __name = "stream" })
    local req = assert(protocol.build(svc("s3"), "PutObject", { Bucket = "b", Key = "k", Body = stream }))
    assert.equal(stream, req.body)
    local out = assert(protocol.parse(svc("s3"), "GetObject", { status = 200, headers = { ["content-length"] = "3" }, body = stream }))
    assert.equal(stream, out.Body)
    assert.equal(3, out.ContentLength)
  end)

  it("fails cleanly on bad parameters", function()
    local s3 = svc("s3")
    local function perr(op, params)
      local req, err = protocol.build(s3, op, params)
      assert.is_nil(req)
      assert.is_true(errors.is(err))
      assert.equal("ParamValidation", err.code)
      return err.message
    end
    assert.matches("Missing required parameter", perr("GetObject", { Bucket = "b" }))
    assert.matches("Missing required parameter", perr("GetObject", { Bucket = "b", Key = "" }))
    assert.matches("Unknown parameter", perr("GetObject", { Bucket = "b", Key = "k", Nope = 1 }))
    assert.matches("valid types: string", perr("GetObject", { Bucket = 1, Key = "k" }))
    assert.matches("valid types: number", perr("ListObjectsV2", { Bucket = "b", MaxKeys = "10" }))
    assert.matches("not an integer", perr("ListObjectsV2", { Bucket = "b", MaxKeys = 1.5 }))
    assert.matches("Invalid timestamp", perr("GetObject", { Bucket = "b", Key = "k", IfModifiedSince = "yesterday" }))
    assert.matches("table expected", perr("GetObject", "params"))
    assert.matches("takes no parameters", perr("ListBuckets", { Bucket = "b" }))
    assert.has_error(function() protocol.build(s3, "NoSuchOperation", {}) end)
    assert.has_error(function() protocol.parse(s3, "GetObject", nil) end)
  end)

  it("fills idempotency tokens with UUID v4 unless given", function()
    local sfn_like = model.new({ metadata = { protocol = "json", jsonVersion = "1.0", targetPrefix = "T", apiVersion = "x" },
      operations = { Op = { name = "Op", http = { method = "POST", requestUri = "/" }, input = { shape = "In" } } },
      shapes = { In = { type = "structure", members = { token = { shape = "S", idempotencyToken = true } } }, S = { type = "string" } } })
    local req = assert(protocol.build(sfn_like, "Op", {}))
    local tok = json.decode(req.body).token
    assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", tok)
    assert.not_equal(tok, json.decode(assert(protocol.build(sfn_like, "Op", {})).body).token)
    req = assert(protocol.build(sfn_like, "Op", { token = "mine" }))
    assert.equal("mine", json.decode(req.body).token)
    local params = {}
    protocol.build(sfn_like, "Op", params)
    assert.is_nil(params.token) -- the caller's table is not changed
  end)

  it("expands host prefixes and checks host labels", function()
    local s = model.new({ metadata = { protocol = "json", jsonVersion = "1.1", targetPrefix = "T", apiVersion = "x" },
      operations = { Op = { name = "Op", http = { method = "POST", requestUri = "/" }, input = { shape = "In" },
        endpoint = { hostPrefix = "{Label}.data." } } },
      shapes = { In = { type = "structure", members = { Label = { shape = "S", hostLabel = true } } }, S = { type = "string" } } })
    assert.equal("abc-1.data.", assert(protocol.build(s, "Op", { Label = "abc-1" })).host_prefix)
    assert.is_nil(assert(protocol.build(s, "Op", { Label = "abc" }, { host_prefix_enabled = false })).host_prefix)
    local req, err = protocol.build(s, "Op", { Label = "bad.label" })
    assert.is_nil(req)
    assert.equal("ParamValidation", err.code)
  end)

  it("adds Content-MD5 for httpChecksumRequired operations", function()
    local core = require "aio_aws.core"
    local saved = core.md5_base64
    core.md5_base64 = saved or function(s) return "md5(" .. s .. ")" end
    local ok, err = pcall(function()
      local req = assert(protocol.build(svc("s3"), "PutBucketTagging",
        { Bucket = "b", Tagging = { TagSet = { { Key = "k", Value = "v" } } } }))
      assert.equal(core.md5_base64(req.body), req.headers["content-md5"])
    end)
    core.md5_base64 = saved
    assert(ok, err)
  end)

  it("adds ResponseMetadata to parsed outputs", function()
    local out = assert(protocol.parse(svc("logs"), "DescribeLogGroups",
      { status = 200, headers = { ["x-amzn-requestid"] = "rid" }, body = '{"logGroups":[{"logGroupName":"g","creationTime":1}]}' }))
    assert.equal("g", out.logGroups[1].logGroupName)
    assert.equal(1, out.logGroups[1].creationTime)
    assert.equal("integer", math.type(out.logGroups[1].creationTime))
    assert.equal("rid", out.ResponseMetadata.RequestId)
    assert.equal(200, out.ResponseMetadata.HTTPStatusCode)
    out = assert(protocol.parse(svc("sts"), "GetCallerIdentity", { status = 200, headers = {},
      body = "<GetCallerIdentityResponse><GetCallerIdentityResult><Account>123</Account></GetCallerIdentityResult>"
        .. "<ResponseMetadata><RequestId>q</RequestId></ResponseMetadata></GetCallerIdentityResponse>" }))
    assert.equal("123", out.Account)
    assert.equal("q", out.ResponseMetadata.RequestId)
  end)

  it("encodes query pairs for the request line", function()
    assert.equal("a=1&flag&b=x%20y%2F%2B", protocol.encode_query({ { "a", "1" }, { "flag" }, { "b", "x y/+" } }))
    assert.equal("/p", protocol.url_path({ path = "/p", query = {} }))
  end)
end)
