-- aio_aws.model: bundled models, AWS_DATA_PATH, lazy loading, shape
-- resolution, botocore's xform_name.
local model = require "aio_aws.model"
local json = require "aio_aws.model.json"

local BOTOCORE = "/usr/lib/python3/dist-packages/botocore/data"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("l")
  p:close()
  return d
end

-- Runs `code` in a fresh lua5.4 with the given environment; returns its stdout.
local function run(env, code)
  local script = os.tmpname()
  write(script, 'package.path = "lua/?.lua;lua/?/init.lua;" .. package.path\n' .. code)
  local cmd = env .. " lua5.4 " .. script .. " 2>&1"
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  os.remove(script)
  return out
end

-- A small botocore-format service, written as botocore does.
local function fake_service(api_version, marker)
  return json.encode({
    version = "2.0",
    metadata = { apiVersion = api_version, protocol = "json", jsonVersion = "1.1",
      endpointPrefix = "fakesvc", targetPrefix = "FakeService", serviceId = "Fake",
      signatureVersion = "v4", serviceFullName = marker },
    operations = {
      DescribeThings = { name = "DescribeThings", http = { method = "POST", requestUri = "/" },
        input = { shape = "DescribeThingsRequest" }, output = { shape = "DescribeThingsResponse" },
        documentation = "<p>docs are dropped</p>" },
    },
    shapes = {
      DescribeThingsRequest = { type = "structure", members = { Name = { shape = "String" } } },
      DescribeThingsResponse = { type = "structure", members = { Count = { shape = "Integer" } } },
      String = { type = "string" },
      Integer = { type = "integer" },
    },
  })
end

describe("model.xform_name", function()
  it("matches botocore", function()
    local cases = {
      ListObjectsV2 = "list_objects_v2", GetLogEvents = "get_log_events",
      DescribeDBInstances = "describe_db_instances", PutObject = "put_object",
      ListWebACLs = "list_web_acls", DescribeCachediSCSIVolumes = "describe_cached_iscsi_volumes",
      ExecutePartiQLStatement = "execute_partiql_statement", CreateJob = "create_job",
      GetBucketACL = "get_bucket_acl", ListHITsForQualificationType = "list_hits_for_qualification_type",
      AssumeRoleWithSAML = "assume_role_with_saml", GetAPIKeys = "get_api_keys",
      DescribeDhcpOptions = "describe_dhcp_options", ListTagsForResource = "list_tags_for_resource",
      CreateIPSet = "create_ip_set", GetSMSAttributes = "get_sms_attributes",
      already_snake = "already_snake", ObjectExists = "object_exists", ARNs = "_arns",
    }
    for name, want in pairs(cases) do
      assert.equal(want, model.xform_name(name), name)
    end
    assert.equal("list-objects-v2", model.xform_name("ListObjectsV2", "-"))
  end)
end)

describe("bundled models", function()
  local bundled = model.bundled()

  it("include the services aio-aws needs", function()
    for _, svc in ipairs({ "batch", "logs", "lambda", "s3", "sqs", "dynamodb", "sts" }) do
      assert.is_table(bundled[svc], svc)
    end
  end)

  it("all load, and every operation and shape resolves", function()
    local lines = {}
    for name in pairs(bundled) do
      model.clear_cache()
      local t = os.clock()
      local svc = assert(model.load(name))
      local load_ms = (os.clock() - t) * 1000
      assert.is_string(svc.metadata.protocol)
      assert.is_string(svc.metadata.apiVersion)
      assert.equal(name, svc.name)
      t = os.clock()
      local ops = svc:operation_names()
      assert.is_true(#ops > 0)
      for _, op_name in ipairs(ops) do
        local op = assert(svc:operation(op_name))
        assert.equal(op_name, op.name)
        assert.equal(op, svc:operation(op.method_name))
        assert.equal(op_name, svc:operation_for_method(op.method_name))
        assert.is_string(op.http.method)
      end
      for _, sname in ipairs(svc:shape_names()) do assert(svc:shape(sname)) end
      local resolve_ms = (os.clock() - t) * 1000
      lines[#lines + 1] = string.format("  %-16s %-10s %4d operations: load %.2f ms, resolve all %.2f ms",
        name, svc.metadata.protocol, #ops, load_ms, resolve_ms)
    end
    table.sort(lines)
    io.write("\nmodel load times (bundled, lua-cjson):\n", table.concat(lines, "\n"), "\n")
  end)

  it("resolve member traits over shape traits", function()
    local s3 = assert(model.load("s3"))
    local op = s3:operation("PutObject")
    assert.equal("PUT", op.http.method)
    assert.equal("/{Bucket}/{Key+}", op.http.requestUri)
    local input = op.input
    assert.equal("Body", input.payload)
    local body = input.members.Body
    assert.equal("blob", body.type)
    assert.is_true(body.streaming)
    local bucket = input.members.Bucket
    assert.equal("uri", bucket.location)
    assert.equal("Bucket", bucket.locationName)
    assert.equal("string", bucket.type)
    assert.equal(bucket.target, s3:shape("BucketName"))
    assert.is_nil(rawget(bucket.target, "location"))
    assert.equal("ACL", input.member_names[1])
    assert.is_true(input.required_set.Bucket)
    assert.is_true(op.has_streaming_input)
    assert.is_false(op.has_streaming_output)
    assert.is_true(s3:operation("GetObject").has_streaming_output)
    assert.equal("Payload", s3:operation("SelectObjectContent").event_stream_output)
    assert.is_true(s3:operation("PutBucketTagging").checksum_required)
    assert.is_false(s3:operation("GetObject").checksum_required)
    local list = s3:operation("ListObjectsV2")
    assert.is_true(list.output.members.Contents.flattened)
    assert.equal("NextContinuationToken", s3:paginator("ListObjectsV2").output_token)
    assert.equal("NextContinuationToken", s3:paginator("list_objects_v2").output_token)
    local w = s3:waiter("ObjectExists")
    assert.equal(5, w.delay)
    assert.equal("integer", math.type(w.delay))
    assert.equal(w, s3:waiter("object_exists"))
    assert.same({ "BucketExists", "BucketNotExists", "ObjectExists", "ObjectNotExists" }, s3:waiter_names())
    assert.equal("NoSuchKey", s3:error_shape("NoSuchKey").name)
    assert.is_nil(s3:operation("NoSuchOperation"))
    assert.has_error(function() s3:must_operation("NoSuchOperation") end)
    local logs = assert(model.load("logs"))
    assert.equal("Logs_20140328", logs.metadata.targetPrefix)
    local sts = assert(model.load("sts"))
    assert.equal("AssumeRoleResult", sts:operation("AssumeRole").output.resultWrapper)
  end)

  it("load once per process", function()
    local a = assert(model.load("lambda"))
    assert.equal(a, model.load("lambda"))
    assert.equal(a, model.load("lambda", a.api_version))
  end)

  it("return nil, err for unknown services and versions", function()
    local svc, err = model.load("no-such-service")
    assert.is_nil(svc)
    assert.equal("UnknownService", err.code)
    svc, err = model.load("s3", "1999-01-01")
    assert.is_nil(svc)
    assert.equal("UnknownService", err.code)
    svc, err = model.load("../../etc")
    assert.is_nil(svc)
    assert.equal("UnknownService", err.code)
    assert.has_error(function() model.load(42) end)
  end)
end)

describe("model loading is lazy", function()
  it("opens no file at require time, and reads on the first load", function()
    -- luacheck: push ignore 122
    local opened = {}
    local real_open, real_popen = io.open, io.popen
    io.open = function(path, ...) opened[#opened + 1] = path; return real_open(path, ...) end
    io.popen = function(cmd, ...) opened[#opened + 1] = "popen:" .. cmd; return real_popen(cmd, ...) end
    local saved = {}
    for name, mod in pairs(package.loaded) do
      if name:match("^aio_aws%.model") or name:match("^aio_aws%.protocol") then
        saved[name] = mod
        package.loaded[name] = nil
      end
    end
    local ok, err = pcall(function()
      local m = require "aio_aws.model"
      require "aio_aws.protocol"
      require "aio_aws.protocol.rest_xml"
      require "aio_aws.protocol.json"
      require "aio_aws.protocol.query"
      assert.same({}, opened)
      assert(m.load("sts"))
      assert.is_true(#opened > 0)
    end)
    io.open, io.popen = real_open, real_popen
    -- luacheck: pop
    for name, mod in pairs(saved) do package.loaded[name] = mod end
    assert(ok, err)
  end)
end)

describe("AWS_DATA_PATH", function()
  it("adds services in botocore's layout and overrides bundled ones", function()
    local dir = tmpdir()
    os.execute("mkdir -p " .. dir .. "/fakesvc/2020-01-01 " .. dir .. "/fakesvc/2021-06-30 " .. dir .. "/sts/2011-06-15")
    write(dir .. "/fakesvc/2020-01-01/service-2.json", fake_service("2020-01-01", "old"))
    write(dir .. "/fakesvc/2021-06-30/service-2.json", fake_service("2021-06-30", "new"))
    write(dir .. "/fakesvc/2021-06-30/paginators-1.json", '{"pagination":{"DescribeThings":{"input_token":"T","output_token":"T","result_key":"Things"}}}')
    -- newer botocore ships gzip-compressed data
    os.execute("gzip " .. dir .. "/fakesvc/2021-06-30/service-2.json")
    -- an sts model that claims to be something else: it must win over the bundled one
    local sts = assert(json.decode(fake_service("2011-06-15", "overridden sts")))
    write(dir .. "/sts/2011-06-15/service-2.json", assert(json.encode(sts)))
    local out = run("AWS_DATA_PATH=" .. dir .. ":/nonexistent", [[
      local model = require "aio_aws.model"
      local svc = assert(model.load("fakesvc"))
      print("newest", svc.api_version, svc.metadata.serviceFullName)
      print("paginator", svc:paginator("DescribeThings").result_key)
      local old = assert(model.load("fakesvc", "2020-01-01"))
      print("pinned", old.api_version, old.metadata.serviceFullName)
      local op = svc:operation("describe_things")
      print("op", op.name, op.input.members.Name.type, op.documentation)
      print("sts", assert(model.load("sts")).metadata.serviceFullName)
      print("s3", assert(model.load("s3")).source:match("models/s3") and "bundled" or "other")
    ]])
    assert.matches("newest\t2021%-06%-30\tnew", out)
    assert.matches("paginator\tThings", out)
    assert.matches("pinned\t2020%-01%-01\told", out)
    assert.matches("op\tDescribeThings\tstring\tnil", out)
    assert.matches("sts\toverridden sts", out)
    assert.matches("s3\tbundled", out)
    os.execute("rm -rf " .. dir)
  end)

  it("reads a real botocore service copied into it", function()
    if not exists(BOTOCORE .. "/route53/2013-04-01/service-2.json") then
      pending("botocore data not installed at " .. BOTOCORE)
      return
    end
    local dir = tmpdir()
    os.execute("mkdir -p " .. dir .. "/route53 && cp -r " .. BOTOCORE .. "/route53/2013-04-01 " .. dir .. "/route53/")
    local out = run("AWS_DATA_PATH=" .. dir .. " AIO_AWS_BOTOCORE_DATA=/nonexistent", [[
      local model = require "aio_aws.model"
      local t = os.clock()
      local svc = assert(model.load("route53"))
      local ms = (os.clock() - t) * 1000
      local op = svc:operation("ChangeResourceRecordSets")
      print("route53", svc.metadata.protocol, op.input.locationName, op.input.xmlNamespace.uri, svc.source:sub(1, #"]] .. dir .. [["))
      print(string.format("raw load %.1f ms", ms))
    ]])
    assert.matches("route53\trest%-xml\tChangeResourceRecordSetsRequest\thttps://route53.amazonaws.com/doc/2013%-04%-01/\t" .. dir:gsub("%p", "%%%0"), out)
    io.write("\nmodel: raw botocore route53 from AWS_DATA_PATH: ", out:match("raw load [%d.]+ ms"), "\n")
    os.execute("rm -rf " .. dir)
  end)
end)

describe("model.new", function()
  it("builds a service from an in-memory description", function()
    local svc = model.new(assert(json.decode(fake_service("2020-01-01", "mem"), { order = true })))
    assert.equal("fakesvc", svc.name)
    local op = svc:operation("DescribeThings")
    assert.equal("POST", op.http.method)
    assert.equal("integer", op.output.members.Count.type)
    assert.same({ "DescribeThings" }, svc:operation_names())
    assert.same({ "describe_things" }, svc:method_names())
  end)

  it("keeps member order from the model text", function()
    local text = [[{"metadata":{"protocol":"rest-xml","apiVersion":"x"},"operations":{},
      "shapes":{"S":{"type":"structure","members":{"Zeta":{"shape":"T"},"Alpha":{"shape":"T"},"Mid":{"shape":"T"}}},
      "T":{"type":"string"}}}]]
    local svc = model.new(assert(json.decode(text, { order = true })))
    assert.same({ "Zeta", "Alpha", "Mid" }, svc:shape("S").member_names)
  end)

  it("handles recursive shapes", function()
    local svc = model.new({ metadata = { protocol = "json" }, operations = {},
      shapes = { Node = { type = "structure", members = { Child = { shape = "Node" }, Kids = { shape = "Nodes" } } },
        Nodes = { type = "list", member = { shape = "Node" } } } })
    local node = svc:shape("Node")
    assert.equal(node, node.members.Child)
    assert.equal(node, node.members.Kids.member)
    local s, err = svc:shape("Missing")
    assert.is_nil(s)
    assert.equal("ModelError", err.code)
  end)
end)
