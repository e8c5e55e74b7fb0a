-- Event hooks around real calls: s3rver for what the service sees, the
-- fault server for what goes (or does not go) on the wire.
local aws = require "aio_aws"
local core = require "aio_aws.core"
local session_mod = require "aio_aws.session"
local run = require "support.run"

local function s3_client(endpoint, creds)
  local session = assert(session_mod.new({ region = "us-east-1",
    credentials = creds or { access_key = "S3RVER", secret_key = "S3RVER" }, config = { env = {} } }))
  return assert(session:client("s3", { endpoint_url = endpoint, s3 = { addressing_style = "path" } }))
end

describe("hooks against s3rver", function()
  local srv, s3
  setup(function()
    srv = require("support.s3rver").start({ buckets = { "hooks" } })
    s3 = s3_client(srv.endpoint)
  end)
  teardown(function()
    if s3 then s3:close() end
    if srv then srv:stop() end
    -- the support modules' control sockets close when collected: here, not in a later spec's fd count
    collectgarbage()
    collectgarbage()
  end)

  it("before_parameter_build edits params (not the caller's table); filters pick operations", function()
    local seen = {}
    local h = s3:on("before_parameter_build", function(params, ctx)
      seen[#seen + 1] = ctx.operation
      params.Key = "rewritten/" .. params.Key
    end, { "PutObject", "get_object" })
    finally(function() h:remove() end)
    run(function()
      local params = { Bucket = "hooks", Key = "a.txt", Body = "A" }
      assert(s3:put_object(params))
      assert.are.equal("a.txt", params.Key)
      local got = assert(s3:get_object({ Bucket = "hooks", Key = "a.txt" }))
      assert.are.equal("A", got.Body:read_all())
      h:remove()
      local listed = assert(s3:list_objects_v2({ Bucket = "hooks", Prefix = "rewritten/" }))
      assert.are.equal("rewritten/a.txt", listed.Contents[1].Key)
      local _, err = s3:get_object({ Bucket = "hooks", Key = "a.txt" })
      assert.are.equal("NoSuchKey", err.code)
    end)
    assert.are.same({ "PutObject", "GetObject" }, seen)
  end)

  it("before_sign changes the request before it is signed; the service sees it", function()
    local h = s3:on("before_sign", function(request)
      request.headers["x-amz-meta-added-by"] = "hook"
    end, "PutObject")
    finally(function() h:remove() end)
    run(function()
      assert(s3:put_object({ Bucket = "hooks", Key = "signed.txt", Body = "S" }))
      local head = assert(s3:head_object({ Bucket = "hooks", Key = "signed.txt" }))
      assert.are.equal("hook", head.Metadata["added-by"])
    end)
  end)

  it("after_call sees parsed output; after_call_error sees the error; '*' matches all", function()
    local outs, errs = {}, {}
    local h1 = s3:on("after_call", function(out, ctx) outs[#outs + 1] = { ctx.operation, out.ETag } end, "*")
    local h2 = s3:on("after_call_error", function(err, ctx) errs[#errs + 1] = { ctx.operation, err.code } end)
    finally(function() h1:remove() h2:remove() end)
    run(function()
      local put = assert(s3:put_object({ Bucket = "hooks", Key = "c.txt", Body = "hello" }))
      local _, err = s3:head_object({ Bucket = "hooks", Key = "missing" })
      assert.are.equal("404", err.code)
      assert.are.same({ { "PutObject", put.ETag } }, outs)
      assert.are.equal('"' .. core.md5_hex("hello") .. '"', put.ETag)
    end)
    assert.are.same({ { "HeadObject", "404" } }, errs)
  end)

  it("hooks may wait, and concurrent calls each run them in their own task", function()
    local order = {}
    local h = s3:on("before_send", function(_, ctx)
      aws.sleep(0.05)
      order[#order + 1] = ctx.params.Key
    end, "PutObject")
    finally(function() h:remove() end)
    run(function()
      local _, errs = aws.gather(
        function() return assert(s3:put_object({ Bucket = "hooks", Key = "w1", Body = "1" })) end,
        function() return assert(s3:put_object({ Bucket = "hooks", Key = "w2", Body = "2" })) end)
      assert.is_nil(errs)
    end)
    table.sort(order)
    assert.are.same({ "w1", "w2" }, order)
  end)

  it("a hook that raises makes the call raise HookError naming it; the client stays usable", function()
    local h = s3:on("after_call", function() error("boom") end, "GetObject")
    run(function()
      assert(s3:put_object({ Bucket = "hooks", Key = "big", Body = ("x"):rep(3 << 20) }))
      local ok, err = pcall(s3.get_object, s3, { Bucket = "hooks", Key = "big" })
      assert.is_false(ok)
      assert.are.equal("HookError", err.code)
      assert.are.equal("after_call", err.event)
      assert.matches("spec/hooks_spec.lua:%d+", err.hook)
      assert.are.equal("GetObject", err.operation)
      assert.matches("boom", tostring(err))
      -- the streamed body the hook never handed over was closed
      collectgarbage()
      assert.are.equal(0, core.stats().in_flight)
      h:remove()
      local out = assert(s3:get_object({ Bucket = "hooks", Key = "big" }))
      assert.are.equal(3 << 20, #out.Body:read_all())
    end)
  end)

  it("raises on misuse", function()
    assert.has_error(function() s3:on("before_call", function() end) end)
    assert.has_error(function() s3:on("after_call", "not a function") end)
    assert.has_error(function() s3:on("after_call", function() end, "NoSuchOperation") end)
    assert.has_error(function() s3:on("after_call", function() end, {}) end)
    assert.has_error(function() s3:on("after_call", function() end, 42) end)
    local h = s3:on("after_call", function() end)
    h:remove()
    h:remove() -- idempotent
    assert.matches("after_call", tostring(h))
  end)
end)

describe("hooks on the wire (fault server)", function()
  local srv, s3
  setup(function()
    srv = require("support.fault_server").start()
    s3 = s3_client(srv:url(""), { access_key = "AK", secret_key = "SK" })
  end)
  teardown(function()
    if s3 then s3:close() end
    if srv then srv:stop() end
    -- the support modules' control sockets close when collected: here, not in a later spec's fd count
    collectgarbage()
    collectgarbage()
  end)
  before_each(function() srv:reset() end)

  it("before_send returning a response short-circuits the network", function()
    local h = s3:on("before_send", function(request)
      assert.matches("^AWS4%-HMAC%-SHA256 ", request.headers.authorization) -- already signed
      return { status = 200, headers = { ["content-length"] = "42", etag = '"fake"' }, body = "" }
    end, "HeadObject")
    finally(function() h:remove() end)
    run(function()
      local out = assert(s3:head_object({ Bucket = "b", Key = "k" }))
      assert.are.equal(42, out.ContentLength)
      assert.are.equal('"fake"', out.ETag)
      assert(s3:put_object({ Bucket = "b", Key = "k", Body = "x" })) -- not filtered: sent
    end)
    local reqs = srv:requests()
    assert.are.equal(1, #reqs)
    assert.are.equal("PUT", reqs[1].method)
  end)

  it("before_sign and before_send run on every attempt; after_call once", function()
    srv:script({ { status = 503, body = "" }, { status = 200, body = "" } })
    local signs, sends, afters = {}, 0, 0
    local h1 = s3:on("before_sign", function(_, ctx) signs[#signs + 1] = ctx.attempt end)
    local h2 = s3:on("before_send", function() sends = sends + 1 end)
    local h3 = s3:on("after_call", function() afters = afters + 1 end)
    finally(function() h1:remove() h2:remove() h3:remove() end)
    run(function()
      local out = assert(s3:put_object({ Bucket = "b", Key = "k", Body = "x" }))
      assert.are.equal(1, out.ResponseMetadata.RetryAttempts)
    end)
    assert.are.same({ 1, 2 }, signs)
    assert.are.equal(2, sends)
    assert.are.equal(1, afters)
  end)

  it("a hook removed while hooks run does not disturb that run", function()
    local calls = {}
    local h2
    local h1 = s3:on("before_send", function() calls[#calls + 1] = 1; h2:remove() end)
    h2 = s3:on("before_send", function() calls[#calls + 1] = 2 end)
    finally(function() h1:remove() end)
    run(function()
      assert(s3:put_object({ Bucket = "b", Key = "k", Body = "x" }))
      assert(s3:put_object({ Bucket = "b", Key = "k", Body = "x" }))
    end)
    assert.are.same({ 1, 2, 1 }, calls)
  end)
end)
