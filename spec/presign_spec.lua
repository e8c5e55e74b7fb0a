-- Presigned URLs and POST policies: byte-for-byte equal to botocore's
-- generate_presigned_url / generate_presigned_post (SigV4, frozen clock)
-- for several services and operations; misuse; live against s3rver: a
-- presigned GET and PUT fetched by curl, and a POST form upload.
local cjson = require "cjson"
local presign = require "aio_aws.presign"
local session_mod = require "aio_aws.session"
local proc = require "support.proc"
local run = require "support.run"

local FROZEN = 1704164645 -- 2024-01-02T03:04:05Z

local function new_session(creds, region)
  return assert(session_mod.new({ region = region or "us-east-1",
    credentials = creds or { access_key = "AKIDEXAMPLE", secret_key = "secret" }, config = { env = {} } }))
end

local TOKEN = { access_key = "AKIDEXAMPLE", secret_key = "secret", session_token = "TOKEN/+=x" }

local URL_CASES = {
  { service = "s3", op = "get_object", params = { Bucket = "bkt", Key = "a b/c+d~.txt" }, expires = 600 },
  { service = "s3", op = "get_object", params = { Bucket = "bkt", Key = "k",
    ResponseContentType = "text/plain", ResponseContentDisposition = "attachment; filename=\"x y\"" } },
  { service = "s3", op = "put_object", params = { Bucket = "bkt", Key = "up/load.bin", ContentType = "text/plain",
    Metadata = { owner = "me" } }, token = true },
  { service = "s3", op = "get_object", params = { Bucket = "bkt", Key = "k" }, http_method = "HEAD" },
  { service = "s3", op = "delete_object", params = { Bucket = "bkt", Key = "k", VersionId = "v1" }, region = "eu-west-1" },
  { service = "s3", op = "get_object", params = { Bucket = "bkt", Key = "k" }, endpoint_url = "http://127.0.0.1:4568" },
  { service = "s3", op = "get_object", params = { Bucket = "bkt.with.dots", Key = "k" }, region = "us-west-2" },
  { service = "sts", op = "get_caller_identity", params = {}, region = "eu-west-1", token = true },
  { service = "sts", op = "assume_role", params = { RoleArn = "arn:aws:iam::123456789012:role/r", RoleSessionName = "sess" } },
  { service = "sqs", op = "receive_message", params = { QueueUrl = "https://sqs.us-east-1.amazonaws.com/123456789012/q",
    MaxNumberOfMessages = 5 }, http_method = "GET" },
  { service = "lambda", op = "get_function", params = { FunctionName = "my-fn", Qualifier = "$LATEST" } },
  { service = "dynamodb", op = "describe_table", params = { TableName = "tbl" }, expires = 60 },
  { service = "logs", op = "describe_log_groups", params = { logGroupNamePrefix = "/aws/", limit = 5 } },
}

local POST_CASES = {
  { bucket = "bkt", key = "uploads/${filename}", fields = { acl = "public-read" },
    conditions = { { acl = "public-read" }, { "content-length-range", 1, 1048576 } }, expires = 120 },
  { bucket = "bkt", key = "fixed/key.txt", token = true },
  { bucket = "bkt", key = "k", region = "eu-west-1", conditions = { { "starts-with", "$Content-Type", "image/" } } },
  { bucket = "bkt", key = "k", endpoint_url = "http://127.0.0.1:4568" },
}

local BOTOCORE = [[
import datetime, json, sys
from unittest import mock
import botocore.session
from botocore.config import Config
FROZEN = datetime.datetime(2024, 1, 2, 3, 4, 5)
class FakeDT(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return FROZEN
spec = json.load(open(sys.argv[1]))
out = {'urls': [], 'posts': []}
def client(c, service):
    kw = dict(region_name=c.get('region') or 'us-east-1', aws_access_key_id='AKIDEXAMPLE',
              aws_secret_access_key='secret')
    if c.get('token'):
        kw['aws_session_token'] = 'TOKEN/+=x'
    if c.get('endpoint_url'):
        kw['endpoint_url'] = c['endpoint_url']
    if service == 's3':
        kw['config'] = Config(signature_version='s3v4')
    return botocore.session.get_session().create_client(service, **kw)
# botocore 1.29 presigns S3 on the global s3.amazonaws.com host whatever
# the region (signers._should_use_global_endpoint; later releases use the
# regional one); this client presigns on the regional endpoint it sends
# its calls to, so botocore is asked for that
with mock.patch('botocore.auth.datetime.datetime', FakeDT), \
     mock.patch('botocore.signers.datetime.datetime', FakeDT), \
     mock.patch('botocore.signers._should_use_global_endpoint', lambda client: False):
    for c in spec['urls']:
        cl = client(c, c['service'])
        out['urls'].append(cl.generate_presigned_url(c['op'], Params=c['params'],
                           ExpiresIn=c.get('expires') or 3600, HttpMethod=c.get('http_method')))
    for c in spec['posts']:
        cl = client(c, 's3')
        out['posts'].append(cl.generate_presigned_post(c['bucket'], c['key'], Fields=c.get('fields'),
                            Conditions=c.get('conditions'), ExpiresIn=c.get('expires') or 3600))
json.dump(out, sys.stdout)
]]

describe("presigning against botocore", function()
  local want
  local real_now = presign.now
  setup(function()
    local input, script = os.tmpname(), os.tmpname()
    -- parameters in the model's member order: botocore serializes a query
    -- in the order of the caller's dict, this client in model order
    local jmespath = require "aio_aws.jmespath"
    local urls = {}
    for i, c in ipairs(URL_CASES) do
      local op = require("aio_aws.model").load(c.service):operation(c.op)
      local list = {}
      for _, name in ipairs(op.input and op.input.member_names or {}) do
        if c.params[name] ~= nil then list[#list + 1] = { name, c.params[name] } end
      end
      local case = {}
      for k, v in pairs(c) do case[#case + 1] = { k, v } end
      table.sort(case, function(a, b) return a[1] < b[1] end)
      for _, kv in ipairs(case) do if kv[1] == "params" then kv[2] = jmespath.object(list) end end
      urls[i] = jmespath.object(case)
    end
    local f = assert(io.open(input, "w"))
    f:write(jmespath.py_dumps(jmespath.object({ { "urls", setmetatable(urls, jmespath.array_mt) },
      { "posts", setmetatable(POST_CASES, jmespath.array_mt) } })))
    f:close()
    f = assert(io.open(script, "w"))
    f:write(BOTOCORE)
    f:close()
    -- regional STS is this client's default (botocore 1.29's is global)
    local out, ok = proc.sh("AWS_STS_REGIONAL_ENDPOINTS=regional /usr/bin/python3 " .. proc.quote(script) .. " "
      .. proc.quote(input) .. " 2>&1")
    os.remove(input)
    os.remove(script)
    assert(ok, "botocore harness failed: " .. out)
    want = cjson.decode(out)
    presign.now = function() return FROZEN end
  end)
  teardown(function() presign.now = real_now end)

  for i, c in ipairs(URL_CASES) do
    it(("generate_presigned_url %s.%s #%d"):format(c.service, c.op, i), function()
      local client = assert(new_session(c.token and TOKEN or nil, c.region)
        :client(c.service, { endpoint_url = c.endpoint_url }))
      local url = assert(client:generate_presigned_url(c.op, c.params,
        { expires_in = c.expires, http_method = c.http_method }))
      assert.are.equal(want.urls[i], url)
    end)
  end

  for i, c in ipairs(POST_CASES) do
    it(("generate_presigned_post #%d %s"):format(i, c.key), function()
      local s3 = assert(new_session(c.token and TOKEN or nil, c.region):client("s3", { endpoint_url = c.endpoint_url }))
      local post = assert(s3:generate_presigned_post(c.bucket, c.key,
        { fields = c.fields, conditions = c.conditions, expires_in = c.expires }))
      assert.are.equal(want.posts[i].url, post.url)
      assert.are.same(want.posts[i].fields, post.fields)
    end)
  end

  it("signs with refreshed credentials", function()
    local creds = require("aio_aws.credentials").new({ access_key = "AKIDOLD", secret_key = "old",
      expiration = FROZEN + 60, source = "test",
      refresh = function()
        return { access_key = "AKIDEXAMPLE", secret_key = "secret", expiration = os.time() + 7200 }
      end })
    local s3 = assert(new_session(creds):client("s3"))
    local url = assert(s3:generate_presigned_url("get_object", URL_CASES[1].params, { expires_in = 600 }))
    assert.are.equal(want.urls[1], url)
  end)
end)

describe("presigning misuse and failures", function()
  local s3 = assert(new_session():client("s3"))
  local sqs = assert(new_session():client("sqs"))

  it("raises on misuse", function()
    assert.has_error(function() s3:generate_presigned_url(5) end)
    assert.has_error(function() s3:generate_presigned_url("NoSuchOp", {}) end)
    assert.has_error(function() s3:generate_presigned_url("get_object", "x") end)
    assert.has_error(function() s3:generate_presigned_url("get_object", {}, "x") end)
    assert.has_error(function() s3:generate_presigned_url("get_object", {}, { expires_in = 0 }) end)
    assert.has_error(function() s3:generate_presigned_url("get_object", {}, { expires_in = 604801 }) end)
    assert.has_error(function() s3:generate_presigned_url("get_object", {}, { expires_in = 1.5 }) end)
    assert.has_error(function() s3:generate_presigned_url("get_object", {}, { http_method = "get" }) end)
    assert.has_error(function() s3:generate_presigned_url("get_object", {}, { bogus = true }) end)
    assert.has_error(function() s3:generate_presigned_post(nil, "k") end)
    assert.has_error(function() s3:generate_presigned_post("b", 5) end)
    assert.has_error(function() s3:generate_presigned_post("b", "k", { fields = { a = 1 } }) end)
    assert.has_error(function() s3:generate_presigned_post("b", "k", { conditions = { "not a table" } }) end)
    assert.has_error(function() s3:generate_presigned_post("b", "k", { expires_in = -1 }) end)
    assert.has_error(function() s3:generate_presigned_post("b", "k", { bogus = 1 }) end)
    assert.has_error(function() sqs:generate_presigned_post("b", "k") end)
  end)

  it("returns ParamValidation for bad parameters", function()
    local url, err = s3:generate_presigned_url("get_object", { Bucket = "b" })
    assert.is_nil(url)
    assert.are.equal("ParamValidation", err.code)
    assert.matches("Key", err.message)
    local batch = assert(new_session():client("batch"))
    -- a JSON body with a list cannot move into a URL (botocore would write
    -- Python's repr of the list)
    local u2, err2 = batch:generate_presigned_url("describe_jobs", { jobs = { "a" } })
    assert.is_nil(u2)
    assert.are.equal("ParamValidation", err2.code)
  end)

  it("returns the credential error when credentials cannot be refreshed", function()
    local creds = require("aio_aws.credentials").new({ access_key = "AKIDOLD", secret_key = "old",
      expiration = os.time() + 60, source = "test",
      refresh = function() return nil, require("aio_aws.errors").new("RefreshFailed", "no") end })
    local c = assert(new_session(creds):client("s3"))
    local url, err = c:generate_presigned_url("get_object", { Bucket = "b", Key = "k" })
    assert.is_nil(url)
    assert.are.equal("CredentialRefreshError", err.code)
    local post, perr = c:generate_presigned_post("b", "k")
    assert.is_nil(post)
    assert.are.equal("CredentialRefreshError", perr.code)
  end)

  it("never puts the secret key in a URL or a form", function()
    local c = assert(new_session({ access_key = "AKIDEXAMPLE", secret_key = "wJalrXUtnFEMIsecretvalue" }):client("s3"))
    local url = assert(c:generate_presigned_url("get_object", { Bucket = "b", Key = "k" }))
    assert.is_nil(url:find("wJalrXUtnFEMIsecretvalue", 1, true))
    local post = assert(c:generate_presigned_post("b", "k"))
    assert.is_nil(cjson.encode(post):find("wJalrXUtnFEMIsecretvalue", 1, true))
  end)
end)

describe("presigned requests against s3rver", function()
  -- s3rver checks the access key and the expiry of presigned URLs but not
  -- SigV4 signatures (support/s3rver.lua); the exact signatures are checked
  -- against botocore above.
  local srv, s3, dir
  setup(function()
    srv = require("support.s3rver").start({ buckets = { "signed" } })
    s3 = assert(new_session({ access_key = srv.access_key_id, secret_key = srv.secret_access_key })
      :client("s3", { endpoint_url = srv.endpoint }))
    dir = proc.tmpdir("presign")
  end)
  teardown(function()
    if s3 then s3:close() end
    if srv then srv:stop() end
    if dir then proc.rmdir(dir) end
  end)

  local function curl(args)
    return proc.sh("env -u LD_PRELOAD curl -sS --max-time 20 " .. args .. " 2>&1")
  end

  it("serves a presigned GET to curl and takes a presigned PUT", function()
    run(function()
      assert(s3:put_object({ Bucket = "signed", Key = "dir/hello world.txt", Body = "hello presigned" }))
    end)
    local url = assert(s3:generate_presigned_url("get_object", { Bucket = "signed", Key = "dir/hello world.txt" },
      { expires_in = 300 }))
    local body, ok = curl(proc.quote(url))
    assert.is_true(ok)
    assert.are.equal("hello presigned", body)
    local put = assert(s3:generate_presigned_url("put_object", { Bucket = "signed", Key = "via-put.txt" }))
    local _, pok = curl("-X PUT --data-binary 'put by curl' -o /dev/null -w '%{http_code}' " .. proc.quote(put))
    assert.is_true(pok)
    run(function()
      local got = assert(s3:get_object({ Bucket = "signed", Key = "via-put.txt" }))
      assert.are.equal("put by curl", got.Body:read_all())
    end)
  end)

  it("refuses an expired presigned URL", function()
    local real = presign.now
    presign.now = function() return os.time() - 7200 end
    local url = assert(s3:generate_presigned_url("get_object", { Bucket = "signed", Key = "dir/hello world.txt" },
      { expires_in = 60 }))
    presign.now = real
    local out = curl("-w ' %{http_code}' " .. proc.quote(url))
    assert.matches("403$", out)
    assert.matches("AccessDenied", out)
  end)

  it("accepts a POST form upload built from generate_presigned_post", function()
    -- s3rver takes the form's key as it is (no ${filename}) and does not
    -- check the policy or its signature (compared with botocore above)
    local post = assert(s3:generate_presigned_post("signed", "posted/form.txt",
      { fields = { ["Content-Type"] = "text/plain" },
        conditions = { { ["Content-Type"] = "text/plain" } } }))
    local file = dir .. "/form.txt"
    local f = assert(io.open(file, "w"))
    f:write("posted by a form")
    f:close()
    local args = {}
    for k, v in pairs(post.fields) do args[#args + 1] = "-F " .. proc.quote(k .. "=" .. v) end
    table.sort(args)
    args[#args + 1] = "-F " .. proc.quote("file=@" .. file) -- the file comes last
    local out, ok = curl("-o /dev/null -w '%{http_code}' " .. table.concat(args, " ") .. " " .. proc.quote(post.url))
    assert.is_true(ok, out)
    assert.matches("^20[04]$", out)
    run(function()
      local got = assert(s3:get_object({ Bucket = "signed", Key = "posted/form.txt" }))
      assert.are.equal("posted by a form", got.Body:read_all())
      assert.are.equal("text/plain", got.ContentType)
    end)
  end)
end)
