-- Waiters: outcomes, attempt counts and messages compared with botocore's
-- Waiter driven by the same scripted answers (botocore's Stubber), misuse,
-- and live waits on s3rver (object_exists / object_not_exists) and
-- dynalite (table_exists / table_not_exists).
local aws = require "aio_aws"
local cjson = require "cjson"
local json = require "aio_aws.model.json" -- writes empty arrays as []
local session_mod = require "aio_aws.session"
local proc = require "support.proc"
local run = require "support.run"

local CREDS = { access_key = "AKIDEXAMPLE", secret_key = "secret" }

local function new_session(creds)
  return assert(session_mod.new({ region = "us-east-1", credentials = creds or CREDS, config = { env = {} } }))
end

local TARGET = { ecs = "AmazonEC2ContainerServiceV20141113", dynamodb = "DynamoDB_20120810" }

-- A transport answering the scripted steps in order ({response} or
-- {error = {code, message, status}}); counts the calls.
local function scripted(service, steps, count)
  local i = 0
  return function(req)
    i = i + 1
    count.n = i
    assert(req.headers["x-amz-target"]:find(TARGET[service], 1, true))
    local step = steps[math.min(i, #steps)]
    if step.error then
      return { status = step.error.status, headers = { ["content-type"] = "application/x-amz-json-1.1" },
        body = cjson.encode({ __type = "com.amazonaws#" .. step.error.code, message = step.error.message }) }
    end
    return { status = 200, headers = { ["content-type"] = "application/x-amz-json-1.1" },
      body = json.encode(step.response) }
  end
end

local function svc(status, deployments, running, desired)
  local deps = {}
  for i = 1, deployments do deps[i] = { id = "d" .. i, status = "PRIMARY" } end
  return { serviceName = "web", status = status, deployments = deps, runningCount = running,
    desiredCount = desired }
end

local SCENARIOS = {
  { service = "ecs", op = "describe_services", waiter = "ServicesStable", max = 5,
    params = { cluster = "c", services = { "web" } },
    steps = { { response = { services = { svc("ACTIVE", 2, 1, 2) }, failures = json.empty_array } },
      { response = { services = { svc("ACTIVE", 1, 2, 2) }, failures = json.empty_array } } } },
  { service = "ecs", op = "describe_services", waiter = "ServicesStable", max = 5,
    params = { cluster = "c", services = { "web" } },
    steps = { { response = { services = json.empty_array, failures = { { arn = "a", reason = "MISSING" } } } } } },
  { service = "ecs", op = "describe_services", waiter = "ServicesStable", max = 5,
    params = { cluster = "c", services = { "web" } },
    steps = { { response = { services = { svc("DRAINING", 1, 0, 0) }, failures = json.empty_array } } } },
  { service = "ecs", op = "describe_services", waiter = "ServicesStable", max = 2,
    params = { cluster = "c", services = { "web" } },
    steps = { { response = { services = { svc("ACTIVE", 2, 1, 2) }, failures = json.empty_array } } } },
  { service = "ecs", op = "describe_tasks", waiter = "TasksRunning", max = 5,
    params = { cluster = "c", tasks = { "t1", "t2" } },
    steps = { { response = { tasks = { { lastStatus = "PENDING" }, { lastStatus = "RUNNING" } }, failures = json.empty_array } },
      { response = { tasks = { { lastStatus = "RUNNING" }, { lastStatus = "RUNNING" } }, failures = json.empty_array } } } },
  { service = "ecs", op = "describe_tasks", waiter = "TasksRunning", max = 5,
    params = { cluster = "c", tasks = { "t1", "t2" } },
    steps = { { response = { tasks = { { lastStatus = "RUNNING" }, { lastStatus = "PENDING" } }, failures = json.empty_array } },
      { response = { tasks = { { lastStatus = "RUNNING" }, { lastStatus = "STOPPED" } }, failures = json.empty_array } } } },
  { service = "ecs", op = "describe_tasks", waiter = "TasksRunning", max = 1,
    params = { cluster = "c", tasks = { "t1" } },
    steps = { { response = { tasks = json.empty_array, failures = json.empty_array } } } },
  { service = "ecs", op = "describe_tasks", waiter = "TasksRunning", max = 3,
    params = { cluster = "c", tasks = { "t1" } },
    steps = { { error = { code = "AccessDeniedException", message = "denied", status = 400 } } } },
  { service = "dynamodb", op = "describe_table", waiter = "TableExists", max = 5,
    params = { TableName = "tbl" },
    steps = { { error = { code = "ResourceNotFoundException", message = "no table", status = 400 } },
      { response = { Table = { TableName = "tbl", TableStatus = "CREATING" } } },
      { response = { Table = { TableName = "tbl", TableStatus = "ACTIVE" } } } } },
  { service = "dynamodb", op = "describe_table", waiter = "TableExists", max = 2,
    params = { TableName = "tbl" },
    steps = { { error = { code = "ResourceNotFoundException", message = "no table", status = 400 } } } },
  { service = "dynamodb", op = "describe_table", waiter = "TableExists", max = 3,
    params = { TableName = "tbl" },
    steps = { { response = { Table = { TableName = "tbl", TableStatus = "CREATING" } } },
      { error = { code = "InternalServerError", message = "boom", status = 500 } } } },
  { service = "dynamodb", op = "describe_table", waiter = "TableNotExists", max = 4,
    params = { TableName = "tbl" },
    steps = { { response = { Table = { TableName = "tbl", TableStatus = "ACTIVE" } } },
      { error = { code = "ResourceNotFoundException", message = "gone", status = 400 } } } },
}

-- botocore's waiters on the same answers (Stubber queues them in order).
local BOTOCORE = [[
import json, sys
import botocore.session
from botocore.stub import Stubber
from botocore.exceptions import WaiterError
out = []
for sc in json.load(open(sys.argv[1])):
    s = botocore.session.get_session()
    c = s.create_client(sc['service'], region_name='us-east-1',
                        aws_access_key_id='AKIDEXAMPLE', aws_secret_access_key='secret')
    st = Stubber(c)
    steps = sc['steps']
    for i in range(sc['max']):
        step = steps[min(i, len(steps) - 1)]
        if 'error' in step:
            e = step['error']
            st.add_client_error(sc['op'], service_error_code=e['code'], service_message=e['message'],
                                http_status_code=e['status'])
        else:
            st.add_response(sc['op'], step['response'])
    st.activate()
    w = c.get_waiter(sc['waiter_snake'])
    try:
        w.wait(WaiterConfig={'Delay': 0, 'MaxAttempts': sc['max']}, **sc['params'])
        res = {'ok': True}
    except WaiterError as e:
        res = {'ok': False, 'message': str(e)}
    res['attempts'] = sc['max'] - len(st._queue)
    out.append(res)
json.dump(out, sys.stdout)
]]

describe("waiters against botocore's", function()
  local want
  setup(function()
    local input, script = os.tmpname(), os.tmpname()
    local list = {}
    for i, sc in ipairs(SCENARIOS) do
      list[i] = { service = sc.service, op = sc.op, waiter_snake = require("aio_aws.model").xform_name(sc.waiter),
        max = sc.max, params = sc.params, steps = sc.steps }
    end
    local f = assert(io.open(input, "w"))
    f:write(json.encode(list))
    f:close()
    f = assert(io.open(script, "w"))
    f:write(BOTOCORE)
    f:close()
    local out, ok = proc.sh("/usr/bin/python3 " .. proc.quote(script) .. " " .. proc.quote(input) .. " 2>&1")
    os.remove(input)
    os.remove(script)
    assert(ok, "botocore harness failed: " .. out)
    want = cjson.decode(out)
  end)

  for i, sc in ipairs(SCENARIOS) do
    it(("%s %s scenario %d"):format(sc.service, sc.waiter, i), function()
      local count = { n = 0 }
      local client = assert(new_session():client(sc.service, { endpoint_url = "http://fake",
        retries = { max_attempts = 1 }, transport = scripted(sc.service, sc.steps, count) }))
      -- model name and snake_case name both work
      local name = i % 2 == 0 and sc.waiter or require("aio_aws.model").xform_name(sc.waiter)
      local res, err = run(function()
        return client:wait(name, sc.params, { delay = 0, max_attempts = sc.max })
      end)
      local w = want[i]
      assert.are.equal(w.attempts, count.n)
      if w.ok then
        assert.is_nil(err, err and tostring(err))
        assert.is_table(res)
        assert.is_table(res.ResponseMetadata)
      else
        assert.is_nil(res)
        assert.are.equal("WaiterError", err.code)
        assert.are.equal(w.message, err.message)
        assert.are.equal(sc.waiter, err.waiter_name)
        assert.is_table(err.last_response)
      end
    end)
  end
end)

describe("waiter misuse and other failures", function()
  it("raises on misuse", function()
    local ddb = assert(new_session():client("dynamodb", { endpoint_url = "http://fake",
      transport = function() error("not reached") end }))
    assert.has_error(function() ddb:wait("no_such_waiter", {}) end)
    assert.has_error(function() ddb:wait(5, {}) end)
    assert.has_error(function() ddb:get_waiter("NoSuch") end)
    local w = ddb:get_waiter("table_exists")
    assert.are.equal("TableExists", w.name)
    assert.are.equal("DescribeTable", w.operation)
    assert.has_error(function() w:wait("x") end)
    assert.has_error(function() w:wait({}, { delay = "1" }) end)
    assert.has_error(function() w:wait({}, { max_attempts = 0 }) end)
    assert.has_error(function() w:wait({}, { bogus = 1 }) end)
    assert.has_error(function() w:wait({ TableName = "tbl" }) end) -- outside a task
    assert.are.same({ "table_exists", "table_not_exists" }, ddb:waiter_names())
    local s3 = assert(new_session():client("s3"))
    assert.are.same({ "bucket_exists", "bucket_not_exists", "object_exists", "object_not_exists" }, s3:waiter_names())
    local sts = assert(new_session():client("sts"))
    assert.are.same({}, sts:waiter_names())
  end)

  it("returns transport and validation errors as they are", function()
    run(function()
      local ddb = assert(new_session():client("dynamodb", { endpoint_url = "http://fake", retries = { max_attempts = 1 },
        transport = function() return nil, require("aio_aws.errors").new("ConnectionError", "refused") end }))
      local r, err = ddb:wait("table_exists", { TableName = "tbl" }, { delay = 0, max_attempts = 3 })
      assert.is_nil(r)
      assert.are.equal("ConnectionError", err.code)
      local slow = assert(new_session():client("dynamodb", { endpoint_url = "http://fake", retries = { max_attempts = 1 },
        transport = function() return nil, require("aio_aws.errors").new("Timeout", "read timed out") end }))
      r, err = slow:wait("table_exists", { TableName = "tbl" }, { delay = 0, max_attempts = 3 })
      assert.is_nil(r)
      assert.are.equal("Timeout", err.code)
      r, err = ddb:wait("table_exists", { TableName = 7 }, { delay = 0 })
      assert.is_nil(r)
      assert.are.equal("ParamValidation", err.code)
    end)
  end)

  it("treats a malformed answer as an error, not as success", function()
    run(function()
      local ddb = assert(new_session():client("dynamodb", { endpoint_url = "http://fake", retries = { max_attempts = 1 },
        transport = function()
          return { status = 200, headers = { ["content-type"] = "application/x-amz-json-1.0" }, body = "{oops" }
        end }))
      local r, err = ddb:wait("table_exists", { TableName = "tbl" }, { delay = 0, max_attempts = 2 })
      assert.is_nil(r)
      assert.is_not_nil(err)
    end)
  end)
end)

describe("waiters against s3rver", function()
  local srv, s3
  setup(function()
    srv = require("support.s3rver").start({ buckets = { "waits" } })
    s3 = assert(new_session({ access_key = srv.access_key_id, secret_key = srv.secret_access_key })
      :client("s3", { endpoint_url = srv.endpoint }))
  end)
  teardown(function()
    if s3 then s3:close() end
    if srv then srv:stop() end
  end)

  it("object_exists waits for an object another task writes", function()
    run(function()
      local writer = aws.spawn(function()
        aws.sleep(0.2)
        return assert(s3:put_object({ Bucket = "waits", Key = "late.txt", Body = "here" }))
      end)
      local head, err = s3:wait("object_exists", { Bucket = "waits", Key = "late.txt" },
        { delay = 0.05, max_attempts = 200 })
      assert.is_nil(err, err and tostring(err))
      assert.are.equal(4, head.ContentLength)
      assert.are.equal(200, head.ResponseMetadata.HTTPStatusCode)
      assert(writer:wait(10))
    end)
  end)

  it("object_not_exists succeeds on 404 and object_exists gives up with botocore's message", function()
    run(function()
      assert(s3:put_object({ Bucket = "waits", Key = "gone.txt", Body = "x" }))
      assert(s3:delete_object({ Bucket = "waits", Key = "gone.txt" }))
      local res, err = s3:wait("ObjectNotExists", { Bucket = "waits", Key = "gone.txt" }, { delay = 0.01 })
      assert.is_nil(err, err and tostring(err))
      assert.are.equal(404, res.ResponseMetadata.HTTPStatusCode)
      local r2, err2 = s3:wait("object_exists", { Bucket = "waits", Key = "gone.txt" }, { delay = 0.01, max_attempts = 2 })
      assert.is_nil(r2)
      assert.are.equal("WaiterError", err2.code)
      -- botocore/waiter.py: the 404 acceptor (state retry) matched last
      assert.are.equal("Waiter ObjectExists failed: Max attempts exceeded. Previously accepted state: "
        .. "Matched expected HTTP status code: 404", err2.message)
      assert.are.equal(404, err2.last_response.ResponseMetadata.HTTPStatusCode)
    end)
  end)
end)

describe("waiters against dynalite", function()
  local srv, ddb
  setup(function()
    srv = require("support.dynalite").start({ create_table_ms = 300, delete_table_ms = 300 })
    ddb = assert(new_session():client("dynamodb", { endpoint_url = srv.endpoint }))
  end)
  teardown(function()
    if ddb then ddb:close() end
    if srv then srv:stop() end
  end)

  it("table_exists waits through CREATING and table_not_exists through DELETING", function()
    run(function()
      local created = assert(ddb:create_table({ TableName = "waited", BillingMode = "PAY_PER_REQUEST",
        KeySchema = { { AttributeName = "id", KeyType = "HASH" } },
        AttributeDefinitions = { { AttributeName = "id", AttributeType = "S" } } }))
      assert.are.equal("CREATING", created.TableDescription.TableStatus)
      local res, err = ddb:wait("table_exists", { TableName = "waited" }, { delay = 0.05, max_attempts = 200 })
      assert.is_nil(err, err and tostring(err))
      assert.are.equal("ACTIVE", res.Table.TableStatus)
      assert(ddb:delete_table({ TableName = "waited" }))
      local gone, gerr = ddb:wait("TableNotExists", { TableName = "waited" }, { delay = 0.05, max_attempts = 200 })
      assert.is_nil(gerr, gerr and tostring(gerr))
      assert.are.equal("ResourceNotFoundException", gone.Error.Code)
    end)
  end)
end)
