-- S3 region redirect (botocore S3RegionRedirectorv2): a request sent to the
-- wrong region gets 301/307/400 with x-amz-bucket-region; the client retries
-- once in that region and remembers it for the bucket.
--
-- The client talks to real AWS host names (no endpoint_url, so the redirect
-- is allowed); a transport handed in (DESIGN: hosts may supply one) sends
-- each request through the real HTTP core to a loopback fault server, with
-- the host name pinned to 127.0.0.1 (`resolve`, curl's --resolve). What the
-- server received (Host header, credential scope) is the evidence.
local http = require "aio_aws.http"
local session_mod = require "aio_aws.session"
local fault = require "support.fault_server"
local run = require "support.run"

local srv

-- https://host/path -> http://host:PORT/path with host pinned to loopback
local function loopback_transport(req)
  local host, rest = req.url:match("^https://([^/]+)(.*)$")
  assert(host, "expected an https AWS URL, got " .. req.url)
  return http.request({
    method = req.method, headers = req.headers, body = req.body,
    url = ("http://%s:%d%s"):format(host, srv.port, rest),
    resolve = { ("%s:%d:127.0.0.1"):format(host, srv.port) },
    timeout = 10,
  })
end

local function s3(region)
  local s = assert(session_mod.new({ region = region, config = { env = {} },
    credentials = { access_key = "AKIDEXAMPLE", secret_key = "secret" } }))
  return assert(s:client("s3", { transport = loopback_transport }))
end

local function scope_region(r)
  return (r.headers.authorization or ""):match("Credential=[^/]+/%d+/([^/]+)/s3/aws4_request")
end

local LIST_OK = [[<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>eu-bucket</Name>
<Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>
<Contents><Key>a.txt</Key><Size>3</Size></Contents></ListBucketResult>]]

-- the body S3 sends with a 301 (S3 API reference, "Error responses")
local PERMANENT_REDIRECT = [[<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be
addressed using the specified endpoint.</Message><Endpoint>eu-bucket.s3.eu-west-1.amazonaws.com</Endpoint>
<Bucket>eu-bucket</Bucket><RequestId>R1</RequestId></Error>]]

describe("S3 region redirect", function()
  setup(function() srv = fault.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  it("follows a 301 with x-amz-bucket-region once, re-signed for that region, and remembers it", function()
    srv:script({
      { status = 301, headers = { ["x-amz-bucket-region"] = "eu-west-1", ["content-type"] = "application/xml" },
        body = PERMANENT_REDIRECT },
      { status = 200, headers = { ["content-type"] = "application/xml" }, body = LIST_OK },
      { status = 200, headers = { ["content-type"] = "application/xml" }, body = LIST_OK },
    })
    local out1, out2 = run(function()
      local c = s3("us-east-1")
      local a = assert(c:list_objects_v2({ Bucket = "eu-bucket" }))
      local b = assert(c:list_objects_v2({ Bucket = "eu-bucket" }))
      return a, b
    end)
    assert.are.equal("a.txt", out1.Contents[1].Key)
    assert.are.equal("a.txt", out2.Contents[1].Key)
    local reqs = srv:requests()
    assert.are.equal(3, #reqs)
    assert.are.equal("us-east-1", scope_region(reqs[1]))
    assert.is_nil(reqs[1].headers.host:find("eu-west-1", 1, true))
    -- the retry and the next call go straight to the bucket's region (the
    -- Host header is the signed one, without the loopback port)
    for i = 2, 3 do
      assert.are.equal("eu-west-1", scope_region(reqs[i]))
      assert.are.equal("eu-bucket.s3.eu-west-1.amazonaws.com", reqs[i].headers.host)
    end
  end)

  it("follows a bodyless 400 on HEAD (AuthorizationHeaderMalformed) the same way", function()
    srv:script({
      { status = 400, headers = { ["x-amz-bucket-region"] = "ap-southeast-2" } },
      { status = 200, headers = { ["content-length"] = "0", etag = '"abc"' } },
    })
    local out = run(function() return assert(s3("us-west-2"):head_object({ Bucket = "au-bucket", Key = "k" })) end)
    assert.are.equal('"abc"', out.ETag)
    local reqs = srv:requests()
    assert.are.equal(2, #reqs)
    assert.are.equal("HEAD", reqs[2].method)
    assert.are.equal("ap-southeast-2", scope_region(reqs[2]))
    assert.are.equal("au-bucket.s3.ap-southeast-2.amazonaws.com", reqs[2].headers.host)
  end)

  it("redirects only once: a second redirect is returned as the error", function()
    srv:script({
      { status = 301, headers = { ["x-amz-bucket-region"] = "eu-west-1" }, body = PERMANENT_REDIRECT },
      { status = 301, headers = { ["x-amz-bucket-region"] = "eu-central-1" }, body = PERMANENT_REDIRECT },
    })
    local r, err = run(function() return s3("us-east-1"):list_objects_v2({ Bucket = "eu-bucket" }) end)
    assert.is_nil(r)
    assert.are.equal("PermanentRedirect", err.code)
    assert.are.equal(301, err.status)
    assert.are.equal(2, #srv:requests())
  end)

  it("does not redirect on an error without x-amz-bucket-region", function()
    srv:script({ { status = 400, headers = { ["content-type"] = "application/xml" },
      body = "<Error><Code>InvalidArgument</Code><Message>bad</Message></Error>" } })
    local r, err = run(function() return s3("us-east-1"):list_objects_v2({ Bucket = "b1" }) end)
    assert.is_nil(r)
    assert.are.equal("InvalidArgument", err.code)
    assert.are.equal(1, #srv:requests())
  end)
end)
