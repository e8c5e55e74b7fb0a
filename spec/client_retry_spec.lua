-- The client's retry and error paths against a scriptable fault server:
-- what the server received (its own request log) and the errors returned.
local core = require "aio_aws.core"
local session_mod = require "aio_aws.session"
local fault = require "support.fault_server"
local proc = require "support.proc"

local srv

local run = require "support.run"

local function client(service, opts)
  local s = assert(session_mod.new({ region = "us-east-1", config = { env = {} },
    credentials = { access_key = "AKIDEXAMPLE", secret_key = "secret" } }))
  opts = opts or {}
  opts.endpoint_url = srv:url("")
  return assert(s:client(service, opts))
end

local JSON = { ["content-type"] = "application/x-amz-json-1.0" }
local function json_error(status, code, msg)
  return { status = status, headers = JSON, body = ('{"__type":"com.amazonaws.dynamodb.v20120810#%s","message":"%s"}')
    :format(code, msg) }
end
local OK_TABLE = { status = 200, headers = JSON, body = '{"TableNames":["a","b"]}' }

describe("client retries and errors", function()
  setup(function() srv = fault.start() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  it("retries 503 and throttling, then returns the result with RetryAttempts", function()
    srv:script({ { status = 503, body = "busy" },
      json_error(400, "ThrottlingException", "slow down"), OK_TABLE })
    local out = run(function() return client("dynamodb"):list_tables({}) end)
    assert.are.same({ "a", "b" }, out.TableNames)
    assert.are.equal(2, out.ResponseMetadata.RetryAttempts)
    assert.are.equal(3, #srv:requests())
  end)

  it("waits between attempts within standard mode's back-off bounds", function()
    srv:script({ { status = 500, body = "" }, { status = 500, body = "" }, OK_TABLE })
    run(function() return assert(client("dynamodb"):list_tables({})) end)
    local reqs = srv:requests()
    assert.are.equal(3, #reqs)
    -- attempt n waits random() * 2^(n-1) seconds: at most 1 s, then 2 s
    assert.is_true(reqs[2].time - reqs[1].time < 1 + 0.5, "first back-off too long")
    assert.is_true(reqs[3].time - reqs[2].time < 2 + 0.5, "second back-off too long")
  end)

  it("gives up after max_attempts with the last error and its metadata", function()
    srv:script({ { status = 503, body = "", times = 10 } })
    local r, err = run(function()
      return client("dynamodb", { retries = { max_attempts = 3 } }):list_tables({})
    end)
    assert.is_nil(r)
    assert.are.equal("503", err.code)
    assert.are.equal(503, err.status)
    assert.are.equal(2, err.response_metadata.RetryAttempts)
    assert.is_true(err.response_metadata.MaxAttemptsReached)
    assert.are.equal(3, #srv:requests())
  end)

  it("does not retry a client error", function()
    srv:script({ json_error(400, "ValidationException", "bad input"), OK_TABLE })
    local r, err = run(function() return client("dynamodb"):list_tables({}) end)
    assert.is_nil(r)
    assert.are.equal("ValidationException", err.code)
    assert.are.equal("bad input", err.message)
    assert.is_false(err.retryable)
    assert.are.equal(1, #srv:requests())
  end)

  it("returns a clear error for a malformed body, with nothing half-parsed", function()
    srv:script({ { status = 200, headers = JSON, body = '{"TableNames": ["a", ' } })
    local r, err = run(function() return client("dynamodb"):list_tables({}) end)
    assert.is_nil(r)
    assert.are.equal("ResponseParserError", err.code)
    srv:reset()
    srv:script({ { status = 200, headers = { ["content-type"] = "text/xml" }, body = "<ListBucketResult><Name>b" } })
    local r2, err2 = run(function() return client("s3"):list_objects_v2({ Bucket = "b" }) end)
    assert.is_nil(r2)
    assert.are.equal("ResponseParserError", err2.code)
  end)

  it("retries connection resets and truncated bodies", function()
    srv:script({ { action = "reset" }, { action = "truncate", status = 200, headers = JSON,
      body = '{"TableNames":[]}', length = 500 }, OK_TABLE })
    local out = run(function() return client("dynamodb"):list_tables({}) end)
    assert.are.same({ "a", "b" }, out.TableNames)
    assert.are.equal(2, out.ResponseMetadata.RetryAttempts)
  end)

  it("times out a stalled response (read_timeout) and retries it", function()
    srv:script({ { action = "delay", seconds = 3, status = 200, headers = JSON, body = "{}" }, OK_TABLE })
    local t0 = core.monotime()
    local out = run(function()
      return client("dynamodb", { read_timeout = 1 }):list_tables({})
    end)
    assert.are.same({ "a", "b" }, out.TableNames)
    assert.are.equal(1, out.ResponseMetadata.RetryAttempts)
    assert.is_true(core.monotime() - t0 < 3)
  end)

  it("replays a file body from its start on every attempt", function()
    local dir = proc.tmpdir("aio-retry-body")
    finally(function() proc.rmdir(dir) end)
    local path = dir .. "/body.bin"
    local f = assert(io.open(path, "wb"))
    f:write(("0123456789"):rep(100000))
    f:close()
    srv:script({ { status = 500, body = "" }, { status = 200, headers = { etag = '"x"' }, body = "" } })
    local out = run(function()
      return client("s3"):put_object({ Bucket = "b", Key = "k", Body = { file = path } })
    end)
    assert.are.equal('"x"', out.ETag)
    local reqs = srv:requests()
    assert.are.equal(2, #reqs)
    assert.are.equal(1000000, reqs[1].body_length)
    assert.are.equal(1000000, reqs[2].body_length)
  end)

  it("decodes url-encoded listing keys as botocore does, only when S3 says so", function()
    -- S3 with encoding-type=url encodes like urllib's quote_plus
    local page = [[<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>dir%2F</Prefix>
<KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>
<Contents><Key>dir%2Fa+b%2Bc.txt</Key><Size>1</Size></Contents>
<Contents><Key>dir%2Fcaf%C3%A9%26%3Cx%3E</Key><Size>2</Size></Contents></ListBucketResult>]]
    local raw = page:gsub("<EncodingType>url</EncodingType>", "")
    local xml = { ["content-type"] = "application/xml" }
    srv:script({ { status = 200, headers = xml, body = page }, { status = 200, headers = xml, body = raw } })
    local a, b = run(function()
      local s3 = client("s3")
      return assert(s3:list_objects_v2({ Bucket = "b", Prefix = "dir/" })),
        assert(s3:list_objects_v2({ Bucket = "b", Prefix = "dir/" }))
    end)
    assert.are.equal("dir/a b+c.txt", a.Contents[1].Key)
    assert.are.equal("dir/caf\xc3\xa9&<x>", a.Contents[2].Key)
    assert.are.equal("dir/", a.Prefix)
    assert.are.equal("url", a.EncodingType)
    -- without EncodingType in the answer the keys are left alone
    assert.are.equal("dir%2Fa+b%2Bc.txt", b.Contents[1].Key)
    assert.matches("encoding%-type=url", srv:requests()[1].query)
  end)

  it("follows an S3 region redirect once and remembers the region", function()
    -- with a fixed endpoint_url there is nowhere else to go: the 301 is returned
    srv:script({ { status = 301, headers = { ["x-amz-bucket-region"] = "eu-west-1",
      ["content-type"] = "application/xml" },
      body = "<Error><Code>PermanentRedirect</Code><Message>moved</Message></Error>" } })
    local r, err = run(function() return client("s3"):head_bucket({ Bucket = "b" }) end)
    assert.is_nil(r)
    assert.are.equal(301, err.status)
    assert.are.equal(1, #srv:requests())
  end)
end)
