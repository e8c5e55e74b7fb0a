-- The model-driven client: dry runs for every bundled service compared with
-- the requests Debian's botocore prepares for the same calls, and live calls
-- against third-party servers on loopback (s3rver, dynalite, local-aws-sqs).
local aws = require "aio_aws"
local cjson = require "cjson.safe"
local core = require "aio_aws.core"
local session_mod = require "aio_aws.session"
local proc = require "support.proc"

local CREDS = { access_key = "AKIDEXAMPLE", secret_key = "secret" }

local function new_session(region, creds)
  return assert(session_mod.new({ region = region or "us-east-1", credentials = creds or CREDS,
    config = { env = {} } }))
end

local run = require "support.run"

local function decode_pct(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- "a=1&b=2" -> sorted list of "name=value" (decoded)
local function form_pairs(s)
  local out = {}
  for part in (s or ""):gmatch("[^&]+") do
    local k, v = part:match("^([^=]*)=?(.*)$")
    out[#out + 1] = decode_pct(k) .. "=" .. decode_pct(v)
  end
  table.sort(out)
  return out
end

local function split_url(url)
  local base, query = url:match("^([^?]*)%??(.*)$")
  return base, form_pairs(query)
end

-- Headers both clients set on purpose; the rest are transport details
-- (length, date, user agent, SDK bookkeeping, the signature).
local IGNORED = {
  authorization = true, ["x-amz-date"] = true, ["user-agent"] = true, ["content-length"] = true,
  ["amz-sdk-invocation-id"] = true, ["amz-sdk-request"] = true, expect = true, host = true,
  ["x-amz-content-sha256"] = true, ["x-amz-security-token"] = true,
}

local function wanted_headers(h, differs)
  local out = {}
  for k, v in pairs(h) do
    k = k:lower()
    if not IGNORED[k] and not (differs and differs[k]) then out[k] = v end
  end
  return out
end

-- XML with the root's child elements sorted: botocore 1.29 writes members
-- in the order of its (unordered) input dict; S3 does not care.
local function xml_children_sorted(x)
  local root_open, inner, root_close = x:match("^(<[^>]+>)(.*)(</[^>]+>)$")
  if not root_open then return x end
  local children, depth, start, pos = {}, 0, 1, 1
  while true do
    local s1, e1, slash, selfclose = inner:find("<(/?)[^>]-(/?)>", pos)
    if not s1 then break end
    if slash == "/" then depth = depth - 1 elseif selfclose ~= "/" then depth = depth + 1 end
    if depth == 0 then
      children[#children + 1] = inner:sub(start, e1)
      start = e1 + 1
    end
    pos = e1 + 1
  end
  table.sort(children)
  return root_open .. table.concat(children) .. root_close
end

local function python_md5_base64(s)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "wb"))
  f:write(s)
  f:close()
  local out = proc.sh("/usr/bin/python3 -c 'import base64,hashlib,sys; "
    .. "print(base64.b64encode(hashlib.md5(open(sys.argv[1],\"rb\").read()).digest()).decode())' " .. proc.quote(tmp))
  os.remove(tmp)
  return out
end

-- One representative call per bundled service (several for S3).
local CASES = {
  { service = "batch", method = "submit_job", params = { jobName = "j1", jobQueue = "q", jobDefinition = "d:1",
    containerOverrides = { command = { "echo", "hi" }, environment = { { name = "A", value = "1" } } },
    parameters = { p = "v" }, retryStrategy = { attempts = 2 } } },
  { service = "logs", method = "put_log_events", params = { logGroupName = "/aws/batch/job", logStreamName = "s/1",
    logEvents = { { timestamp = 1700000000000, message = "hello" } } } },
  -- Content-Type of a blob payload: the AWS protocol test suite (restJson1
  -- HttpPayloadTraitsWithBlob) sends application/octet-stream; botocore
  -- 1.29 sends none. The protocol layer follows the suite.
  { service = "lambda", method = "invoke", params = { FunctionName = "fn", InvocationType = "Event",
    Payload = '{"a":1}', Qualifier = "$LATEST", LogType = "Tail" }, differs = { ["content-type"] = true } },
  { service = "s3", method = "put_object", endpoint_url = "http://127.0.0.1:9000",
    params = { Bucket = "bkt", Key = "dir/a b+c~.txt", Body = "hello", Metadata = { k = "v" }, ContentType = "text/plain" } },
  { service = "s3", method = "list_objects_v2", region = "us-west-2",
    params = { Bucket = "my-bucket", Prefix = "a/", Delimiter = "/", MaxKeys = 10, StartAfter = "a/b" } },
  -- The XML payload's Content-Type follows the protocol test suite
  -- (restXml sends application/xml); botocore 1.29 sends none. botocore's
  -- Content-MD5 here is not the MD5 of the body it sends, so ours is checked
  -- against an MD5 computed by Python instead.
  { service = "s3", method = "delete_objects", endpoint_url = "http://127.0.0.1:9000",
    params = { Bucket = "bkt", Delete = { Objects = { { Key = "a" }, { Key = "b&c" } }, Quiet = true } },
    differs = { ["content-type"] = true, ["content-md5"] = true } },
  { service = "sqs", method = "send_message", params = { QueueUrl = "https://sqs.us-east-1.amazonaws.com/123456789012/q",
    MessageBody = "hi there", DelaySeconds = 1,
    MessageAttributes = { a = { DataType = "String", StringValue = "x" } } } },
  { service = "dynamodb", method = "put_item", params = { TableName = "tbl",
    Item = { id = { S = "1" }, n = { N = "5" }, l = { L = { { S = "x" }, { BOOL = true } } } } } },
  { service = "sts", method = "assume_role", params = { RoleArn = "arn:aws:iam::123456789012:role/r",
    RoleSessionName = "sess", DurationSeconds = 900 } },
  { service = "cloudwatch", method = "put_metric_data", params = { Namespace = "ns", MetricData = {
    { MetricName = "m", Value = 1.5, Unit = "Count", Dimensions = { { Name = "d", Value = "v" } } } } } },
  { service = "ecr", method = "describe_repositories", params = { repositoryNames = { "r1", "r2" } } },
  { service = "ecs", method = "list_clusters", params = { maxResults = 10 } },
  { service = "iam", method = "list_users", params = { MaxItems = 5, PathPrefix = "/x/" } },
  { service = "kms", method = "encrypt", params = { KeyId = "alias/k", Plaintext = "secret bytes" } },
  { service = "secretsmanager", method = "get_secret_value", params = { SecretId = "s", VersionStage = "AWSCURRENT" } },
  { service = "sns", method = "publish", params = { TopicArn = "arn:aws:sns:us-east-1:123456789012:t", Message = "m",
    MessageAttributes = { a = { DataType = "String", StringValue = "v" } } } },
  { service = "ssm", method = "get_parameter", params = { Name = "/p/q", WithDecryption = true } },
}

describe("client dry runs", function()
  local expected

  setup(function()
    local input = {}
    for i, c in ipairs(CASES) do
      input[i] = { service = c.service, region = c.region or "us-east-1", method = c.method,
        params = c.params, endpoint_url = c.endpoint_url }
    end
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "w"))
    f:write(cjson.encode(input))
    f:close()
    -- Regional STS is this client's documented default (botocore 1.29's
    -- is the legacy global endpoint): ask botocore for the same.
    local out = proc.sh("AWS_STS_REGIONAL_ENDPOINTS=regional /usr/bin/python3 spec/support/botocore_prepare.py < "
      .. proc.quote(tmp) .. " 2>&1")
    os.remove(tmp)
    expected = cjson.decode(out)
    assert(type(expected) == "table", "botocore_prepare.py failed: " .. out)
  end)

  it("covers every bundled service", function()
    local covered = {}
    for _, c in ipairs(CASES) do covered[c.service] = true end
    local index = cjson.decode(assert(io.open("lua/aio_aws/models/index.json")):read("a"))
    for name in pairs(index.services) do
      assert(covered[name], "no dry-run case for bundled service " .. name)
    end
  end)

  for i, c in ipairs(CASES) do
    it(("matches botocore for %s.%s"):format(c.service, c.method), function()
      local client = assert(new_session(c.region):client(c.service, { endpoint_url = c.endpoint_url }))
      local req = assert(client[c.method](client, c.params, { dry_run = true }))
      local want = expected[i]
      assert.are.equal(want.method, req.method)
      local base, query = split_url(req.url)
      local wbase, wquery = split_url(want.url)
      assert.are.equal(wbase, base)
      assert.are.same(wquery, query)
      assert.are.same(wanted_headers(want.headers, c.differs), wanted_headers(req.headers, c.differs))
      if c.differs and c.differs["content-md5"] then
        assert.are.equal(python_md5_base64(req.body), req.headers["content-md5"])
      end
      local wbody = core.base64_decode(want.body_b64)
      local body = req.body or ""
      local ctype = (want.headers["content-type"] or "")
      if ctype:find("json", 1, true) then
        assert.are.same(cjson.decode(wbody ~= "" and wbody or "{}"), cjson.decode(body ~= "" and body or "{}"))
      elseif ctype:find("x-www-form-urlencoded", 1, true) then
        assert.are.same(form_pairs(wbody), form_pairs(body))
      elseif wbody:sub(1, 1) == "<" then
        assert.are.equal(xml_children_sorted(wbody), xml_children_sorted(body))
      else
        assert.are.equal(wbody, body)
      end
      assert.matches("^AWS4%-HMAC%-SHA256 Credential=AKIDEXAMPLE/%d+/", req.headers.authorization)
      client:close()
    end)
  end

  it("raises on misuse and returns ParamValidation without sending", function()
    local s = new_session()
    local ddb = assert(s:client("dynamodb", { endpoint_url = "http://127.0.0.1:1" }))
    assert.has_error(function() ddb:call(5) end)
    assert.has_error(function() ddb:call("NoSuchOperation", {}) end)
    assert.has_error(function() ddb:put_item("x") end)
    assert.has_error(function() s:client(5) end)
    assert.has_error(function() s:client("s3", { bogus = true }) end)
    assert.has_error(function() s:client("s3", { max_pool_connections = "10" }) end)
    local r, err = run(function() return ddb:put_item({ TableName = 5 }) end)
    assert.is_nil(r)
    assert.are.equal("ParamValidation", err.code)
    assert.matches("TableName", err.message)
    assert.is_nil(ddb.no_such_method)
    local c, cerr = s:client("no-such-service")
    assert.is_nil(c)
    assert.are.equal("UnknownService", cerr.code)
  end)

  it("never shows credentials in tostring of sessions, clients or errors", function()
    local s = new_session("us-east-1", { access_key = "AKIDSECRETCHECK", secret_key = "wJalrXUtnFEMIsecretvalue" })
    local c = assert(s:client("sqs"))
    local dump = tostring(s) .. tostring(c) .. tostring(assert(s:get_credentials()))
    assert.is_nil(dump:find("wJalrXUtnFEMIsecretvalue", 1, true))
    assert.is_nil(dump:find("AKIDSECRETCHECK", 1, true))
  end)
end)

describe("client against s3rver", function()
  local srv, s3
  setup(function()
    srv = require("support.s3rver").start()
    s3 = assert(new_session("us-east-1", { access_key = srv.access_key_id, secret_key = srv.secret_access_key })
      :client("s3", { endpoint_url = srv.endpoint }))
  end)
  teardown(function()
    if s3 then s3:close() end
    if srv then srv:stop() end
  end)

  it("creates a bucket, puts, gets, heads, copies and deletes objects with metadata", function()
    run(function()
      assert(s3:create_bucket({ Bucket = "objects" }))
      local put = assert(s3:put_object({ Bucket = "objects", Key = "dir/a b+c.txt", Body = "hello world",
        ContentType = "text/plain", Metadata = { owner = "me" } }))
      assert.are.equal('"' .. core.md5_hex("hello world") .. '"', put.ETag)
      assert.are.equal(200, put.ResponseMetadata.HTTPStatusCode)
      local got = assert(s3:get_object({ Bucket = "objects", Key = "dir/a b+c.txt" }))
      assert.are.equal("hello world", got.Body:read_all())
      assert.are.equal("text/plain", got.ContentType)
      assert.are.equal("me", got.Metadata.owner)
      assert.are.equal(11, got.ContentLength)
      assert.is_number(got.LastModified)
      assert.is_true(math.abs(got.LastModified - os.time()) < 3600)
      local head = assert(s3:head_object({ Bucket = "objects", Key = "dir/a b+c.txt" }))
      assert.are.equal(11, head.ContentLength)
      assert(s3:copy_object({ Bucket = "objects", Key = "copy.txt", CopySource = "objects/dir/a b+c.txt" }))
      local copy = assert(s3:get_object({ Bucket = "objects", Key = "copy.txt" }))
      assert.are.equal("hello world", copy.Body:read_all())
      assert(s3:delete_object({ Bucket = "objects", Key = "copy.txt" }))
      local gone, err = s3:get_object({ Bucket = "objects", Key = "copy.txt" })
      assert.is_nil(gone)
      assert.are.equal("NoSuchKey", err.code)
      assert.are.equal(404, err.status)
      local h, herr = s3:head_object({ Bucket = "objects", Key = "copy.txt" })
      assert.is_nil(h)
      assert.are.equal("404", herr.code)
      local nb, nberr = s3:get_object({ Bucket = "no-such-bucket", Key = "x" })
      assert.is_nil(nb)
      assert.are.equal("NoSuchBucket", nberr.code)
    end)
  end)

  it("lists 2,500 keys with ListObjectsV2 pages, a prefix and a delimiter", function()
    run(function()
      assert(s3:create_bucket({ Bucket = "listing" }))
      local sem = aws.Semaphore(32)
      local ts = {}
      for i = 1, 2500 do
        local key = ("%s/k%04d"):format(i % 2 == 0 and "even" or "odd", i)
        ts[i] = aws.spawn(function()
          return sem:with(function() return assert(s3:put_object({ Bucket = "listing", Key = key, Body = "x" })) end)
        end)
      end
      local _, errs = aws.gather(table.unpack(ts))
      assert.is_nil(errs)
      local keys, token, pages = {}, nil, 0
      repeat
        local page = assert(s3:list_objects_v2({ Bucket = "listing", MaxKeys = 1000, ContinuationToken = token }))
        pages = pages + 1
        for _, o in ipairs(page.Contents or {}) do keys[#keys + 1] = o.Key end
        token = page.IsTruncated and page.NextContinuationToken or nil
      until not token
      assert.are.equal(3, pages)
      assert.are.equal(2500, #keys)
      local dl = assert(s3:list_objects_v2({ Bucket = "listing", Delimiter = "/" }))
      local prefixes = {}
      for _, p in ipairs(dl.CommonPrefixes) do prefixes[#prefixes + 1] = p.Prefix end
      table.sort(prefixes)
      assert.are.same({ "even/", "odd/" }, prefixes)
      local pre = assert(s3:list_objects_v2({ Bucket = "listing", Prefix = "odd/k00" }))
      assert.are.equal(50, pre.KeyCount)
      -- keys XML cannot carry raw, and '+' / ' ' (urllib's unquote_plus)
      local odd = { "a b+c.txt", "100%.txt", "caf\xc3\xa9 &<x>" }
      for _, k in ipairs(odd) do assert(s3:put_object({ Bucket = "listing", Key = "odd-keys/" .. k, Body = "" })) end
      local listed = assert(s3:list_objects_v2({ Bucket = "listing", Prefix = "odd-keys/" }))
      local got = {}
      for _, o in ipairs(listed.Contents) do got[#got + 1] = o.Key end
      table.sort(got)
      local want = {}
      for i, k in ipairs(odd) do want[i] = "odd-keys/" .. k end
      table.sort(want)
      assert.are.same(want, got)
      assert.are.equal("odd-keys/", listed.Prefix)
    end)
  end)

  it("does a multipart upload", function()
    run(function()
      assert(s3:create_bucket({ Bucket = "multi" }))
      local up = assert(s3:create_multipart_upload({ Bucket = "multi", Key = "big" }))
      local part1 = ("a"):rep(5 * 1024 * 1024)
      local part2 = "tail"
      local p1 = assert(s3:upload_part({ Bucket = "multi", Key = "big", UploadId = up.UploadId, PartNumber = 1, Body = part1 }))
      local p2 = assert(s3:upload_part({ Bucket = "multi", Key = "big", UploadId = up.UploadId, PartNumber = 2, Body = part2 }))
      assert(s3:complete_multipart_upload({ Bucket = "multi", Key = "big", UploadId = up.UploadId,
        MultipartUpload = { Parts = { { ETag = p1.ETag, PartNumber = 1 }, { ETag = p2.ETag, PartNumber = 2 } } } }))
      local got = assert(s3:get_object({ Bucket = "multi", Key = "big" }))
      assert.are.equal(core.md5_hex(part1 .. part2), core.md5_hex(got.Body:read_all()))
    end)
  end)
end)

describe("client against dynalite", function()
  local srv, ddb
  setup(function()
    srv = require("support.dynalite").start()
    ddb = assert(new_session():client("dynamodb", { endpoint_url = srv.endpoint }))
  end)
  teardown(function()
    if ddb then ddb:close() end
    if srv then srv:stop() end
  end)

  it("creates a table, puts and gets items, batch-writes in chunks of 25", function()
    run(function()
      assert(ddb:create_table({ TableName = "items", BillingMode = "PAY_PER_REQUEST",
        KeySchema = { { AttributeName = "id", KeyType = "HASH" } },
        AttributeDefinitions = { { AttributeName = "id", AttributeType = "S" } } }))
      local status
      for _ = 1, 100 do
        status = assert(ddb:describe_table({ TableName = "items" })).Table.TableStatus
        if status == "ACTIVE" then break end
        aws.sleep(0.05)
      end
      assert.are.equal("ACTIVE", status)
      assert(ddb:put_item({ TableName = "items", Item = { id = { S = "one" }, n = { N = "42" },
        b = { B = "\0\1\2" }, l = { L = { { S = "x" }, { BOOL = true } } } } }))
      local got = assert(ddb:get_item({ TableName = "items", Key = { id = { S = "one" } } }))
      assert.are.equal("42", got.Item.n.N)
      assert.are.equal("\0\1\2", got.Item.b.B)
      assert.is_true(got.Item.l.L[2].BOOL)
      local reqs = {}
      for i = 1, 60 do reqs[i] = { PutRequest = { Item = { id = { S = "k" .. i } } } } end
      for first = 1, #reqs, 25 do
        local chunk = table.move(reqs, first, math.min(first + 24, #reqs), 1, {})
        local out = assert(ddb:batch_write_item({ RequestItems = { items = chunk } }))
        assert.are.same({}, out.UnprocessedItems or {})
      end
      local too_many = table.move(reqs, 1, 26, 1, {})
      local r, err = ddb:batch_write_item({ RequestItems = { items = too_many } })
      assert.is_nil(r)
      assert.are.equal("ValidationException", err.code)
      local scan = assert(ddb:scan({ TableName = "items", Select = "COUNT" }))
      assert.are.equal(61, scan.Count)
      local nf, nferr = ddb:describe_table({ TableName = "missing" })
      assert.is_nil(nf)
      assert.are.equal("ResourceNotFoundException", nferr.code)
      assert.is_false(nferr.retryable)
    end)
  end)
end)

describe("client against local-aws-sqs (query protocol)", function()
  local srv, sqs
  setup(function()
    srv = require("support.sqs").start()
    sqs = assert(new_session():client("sqs", { endpoint_url = srv.endpoint }))
  end)
  teardown(function()
    if sqs then sqs:close() end
    if srv then srv:stop() end
  end)

  it("creates, lists and deletes queues; sends, receives and deletes messages", function()
    run(function()
      local q = assert(sqs:create_queue({ QueueName = "jobs" })).QueueUrl
      assert.matches("jobs$", q)
      local list = assert(sqs:list_queues({}))
      assert.are.equal(1, #list.QueueUrls)
      -- local-aws-sqs does not escape "&" or "<" in ReceiveMessage's XML
      -- (a server bug), so the body avoids them.
      local sent = assert(sqs:send_message({ QueueUrl = q, MessageBody = "hello world",
        MessageAttributes = { kind = { DataType = "String", StringValue = "greeting" } } }))
      assert.are.equal(core.md5_hex("hello world"), sent.MD5OfMessageBody)
      local got
      for _ = 1, 50 do
        got = assert(sqs:receive_message({ QueueUrl = q, MessageAttributeNames = { "All" } }))
        if got.Messages and #got.Messages > 0 then break end
        aws.sleep(0.02)
      end
      assert.are.equal("hello world", got.Messages[1].Body)
      assert.are.equal("greeting", got.Messages[1].MessageAttributes.kind.StringValue)
      assert(sqs:delete_message({ QueueUrl = q, ReceiptHandle = got.Messages[1].ReceiptHandle }))
      assert(sqs:delete_queue({ QueueUrl = q }))
      local _, err = sqs:get_queue_url({ QueueName = "jobs" })
      assert.matches("NonExistentQueue", err.code)
    end)
  end)
end)

describe("client against local-aws-sqs (JSON protocol)", function()
  -- Debian's botocore 1.29 has only the query model of SQS; AWS moved SQS
  -- to JSON 1.0 (targetPrefix AmazonSQS). Same shapes, other protocol.
  local srv, sqs
  setup(function()
    srv = require("support.sqs").start()
    local f = assert(io.open("/usr/lib/python3/dist-packages/botocore/data/sqs/2012-11-05/service-2.json"))
    local desc = assert(require("cjson").decode(f:read("a")))
    f:close()
    desc.metadata.protocol = "json"
    desc.metadata.protocols = nil
    desc.metadata.jsonVersion = "1.0"
    desc.metadata.targetPrefix = "AmazonSQS"
    local svc = require("aio_aws.model").new(desc, { name = "sqs" })
    sqs = assert(new_session():client("sqs", { endpoint_url = srv.endpoint, service_model = svc }))
  end)
  teardown(function()
    if sqs then sqs:close() end
    if srv then srv:stop() end
  end)

  it("speaks X-Amz-Target JSON to the same server", function()
    local req = assert(sqs:list_queues({}, { dry_run = true }))
    assert.are.equal("AmazonSQS.ListQueues", req.headers["x-amz-target"])
    assert.are.equal("application/x-amz-json-1.0", req.headers["content-type"])
    run(function()
      local q = assert(sqs:create_queue({ QueueName = "json-jobs" })).QueueUrl
      assert.matches("json%-jobs$", q)
      assert(sqs:send_message({ QueueUrl = q, MessageBody = "via json" }))
      local got
      for _ = 1, 50 do
        got = assert(sqs:receive_message({ QueueUrl = q }))
        if got.Messages and #got.Messages > 0 then break end
        aws.sleep(0.02)
      end
      assert.are.equal("via json", got.Messages[1].Body)
      assert(sqs:delete_message({ QueueUrl = q, ReceiptHandle = got.Messages[1].ReceiptHandle }))
      assert(sqs:delete_queue({ QueueUrl = q }))
    end)
  end)
end)
