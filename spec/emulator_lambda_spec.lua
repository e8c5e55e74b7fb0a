-- The local endpoint's Lambda service, called directly. Expected values
-- follow the Lambda API reference (Invoke, GetFunction, ListFunctions) and
-- the Lambda log format (START / END / REPORT lines).
local aws = require "aio_aws"
local core = require "aio_aws.core"
local cjson = require "cjson"
local run = require "support.run"
local store = require "aio_aws.emulator.store"
local lambda_mod = require "aio_aws.emulator.lambda"
local logs_mod = require "aio_aws.emulator.logs"

local FIXTURES = "spec/interop/functions"

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(store.mkdir_p(p))
  return p
end

local function rm_rf(p) os.execute("rm -rf '" .. p .. "'") end

local function copy(src, dst)
  local f = assert(io.open(src, "rb"))
  local data = f:read("a")
  f:close()
  f = assert(io.open(dst, "wb"))
  f:write(data)
  f:close()
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- A function with one reserved slot that holds it until the test opens the
-- gate (an aio_aws.Event shared through package.loaded: same process).
local GATE = "local aws = require 'aio_aws'\n"
  .. "return {reserved_concurrency = 1, timeout = 60, handler = function()\n"
  .. "  package.loaded.spec_lambda_gate:wait(60); return 'passed' end}\n"

describe("emulator lambda (service object)", function()
  local fdir, logs, lam
  before_each(function()
    fdir = tmpdir()
    for _, name in ipairs(store.list_dir(FIXTURES)) do copy(FIXTURES .. "/" .. name, fdir .. "/" .. name) end
    write(fdir .. "/broken.lua", "return function(event\n")
    write(fdir .. "/quits.lua", "return function() os.exit(3) end\n")
    write(fdir .. "/gate.lua", GATE)
    write(fdir .. "/not a function name.lua", "return function() end\n")
    write(fdir .. "/README.txt", "not a function\n")
    logs = assert(logs_mod.new{ clock = os.time })
    lam = lambda_mod.new{ functions_dir = fdir, logs = logs, region = "eu-west-1", account_id = "123456789012",
      url = "http://127.0.0.1:1", access_key = "AKIDLOCAL", secret_key = "local-secret" }
  end)
  after_each(function()
    lam:close()
    rm_rf(fdir)
  end)

  local function invoke(params)
    return run(function() return lam:call("Invoke", params) end)
  end

  local function payload(out) return cjson.decode(out.Payload) end

  describe("ListFunctions and GetFunction", function()
    it("lists every NAME.lua with its configuration", function()
      local out = assert(lam:call("ListFunctions", {}))
      local names = {}
      for i, f in ipairs(out.Functions) do names[i] = f.FunctionName end
      assert.same({ "broken", "busy", "caller", "chatty", "configured", "custom_error", "echo", "fail", "gate",
        "marshal", "quits", "slow", "writer" }, names)
      assert.is_nil(out.NextMarker)
      local echo = out.Functions[7]
      assert.equal("echo", echo.FunctionName)
      assert.equal("arn:aws:lambda:eu-west-1:123456789012:function:echo", echo.FunctionArn)
      assert.equal(3, echo.Timeout)        -- Lambda's default timeout
      assert.equal(128, echo.MemorySize)   -- and memory
      assert.equal("$LATEST", echo.Version)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%+0000$", echo.LastModified)
      local f = assert(io.open(FIXTURES .. "/echo.lua", "rb"))
      local text = f:read("a")
      f:close()
      assert.equal(#text, echo.CodeSize)
      assert.equal(core.base64_encode(core.sha256(text)), echo.CodeSha256)
      assert.equal("Failed", out.Functions[1].State)
    end)

    it("pages with MaxItems and Marker", function()
      local seen, marker, pages = {}, nil, 0
      repeat
        local out = assert(lam:call("ListFunctions", { MaxItems = 4, Marker = marker }))
        pages = pages + 1
        for _, f in ipairs(out.Functions) do seen[#seen + 1] = f.FunctionName end
        marker = out.NextMarker
      until not marker
      assert.equal(4, pages)
      assert.equal(13, #seen)
      local _, err = lam:call("ListFunctions", { MaxItems = 0 })
      assert.equal("InvalidParameterValueException", err.code)
    end)

    it("GetFunction reads the file's configuration", function()
      local out = assert(lam:call("GetFunction", { FunctionName = "configured" }))
      assert.equal(10, out.Configuration.Timeout)
      assert.equal(256, out.Configuration.MemorySize)
      assert.equal("one at a time", out.Configuration.Description)
      assert.equal(1, out.Concurrency.ReservedConcurrentExecutions)
      assert(lam:call("GetFunction", { FunctionName = "arn:aws:lambda:eu-west-1:123456789012:function:echo" }))
      assert(lam:call("GetFunction", { FunctionName = "echo", Qualifier = "$LATEST" }))
      assert(lam:call("GetFunction", { FunctionName = "echo:$LATEST" }))
    end)

    it("GetFunction errors", function()
      local _, err = lam:call("GetFunction", { FunctionName = "nope" })
      assert.equal("ResourceNotFoundException", err.code)
      assert.equal(404, err.status)
      assert.equal("Function not found: arn:aws:lambda:eu-west-1:123456789012:function:nope", err.message)
      _, err = lam:call("GetFunction", { FunctionName = "echo", Qualifier = "3" })
      assert.equal("ResourceNotFoundException", err.code)
      _, err = lam:call("GetFunction", { FunctionName = "../echo" })
      assert.equal("ResourceNotFoundException", err.code)
      _, err = lam:call("GetFunction", {})
      assert.equal("InvalidParameterValueException", err.code)
    end)
  end)

  describe("Invoke", function()
    it("RequestResponse returns the handler's result as JSON", function()
      local out = assert(invoke({ FunctionName = "echo", Payload = '{"a": [1, 2], "b": {}, "c": []}' }))
      assert.equal(200, out.StatusCode)
      assert.is_nil(out.FunctionError)
      assert.equal("$LATEST", out.ExecutedVersion)
      local p = payload(out)
      assert.same({ 1, 2 }, p.event.a)
      assert.matches('"c":%[%]', out.Payload)   -- an empty array stays an array
      assert.matches('"b":{}', out.Payload)
      assert.equal("arn:aws:lambda:eu-west-1:123456789012:function:echo", p.arn)
      assert.is_true(p.remaining_ok)
      assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", p.request_id)
      -- ClientContext arrives decoded (base64 JSON on the wire)
      local cc = core.base64_encode('{"custom": {"k": "v"}}')
      assert.same({ custom = { k = "v" } },
        payload(assert(invoke({ FunctionName = "echo", ClientContext = cc }))).client_context)
      local _, err = invoke({ FunctionName = "echo", ClientContext = "not base64!" })
      assert.equal("InvalidRequestContentException", err.code)
      _, err = invoke({ FunctionName = "echo", ClientContext = core.base64_encode("[1]") })
      assert.equal("InvalidRequestContentException", err.code)
      -- no payload: the event is an empty object
      assert.same({}, payload(assert(invoke({ FunctionName = "echo" }))).event)
    end)

    it("LogType Tail gives START, the printed lines, END and REPORT", function()
      local out = assert(invoke({ FunctionName = "echo", LogType = "Tail", Payload = "{}" }))
      local log = core.base64_decode(out.LogResult)
      local rid = payload(out).request_id
      local lines = {}
      for line in log:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.equal("START RequestId: " .. rid .. " Version: $LATEST", lines[1])
      assert.equal("echo from echo\t" .. rid, lines[2])
      assert.equal("END RequestId: " .. rid, lines[3])
      assert.matches("^REPORT RequestId: " .. rid:gsub("%-", "%%-") .. "\tDuration: %d+%.%d%d ms\tBilled Duration: %d+ ms\t"
        .. "Memory Size: 128 MB\tMax Memory Used: %d+ MB", lines[4])
      -- the same lines in CloudWatch Logs, group /aws/lambda/echo
      local streams = assert(logs:call("DescribeLogStreams", { logGroupName = "/aws/lambda/echo" })).logStreams
      assert.equal(1, #streams)
      assert.matches("^%d%d%d%d/%d%d/%d%d/%[%$LATEST%]%x+$", streams[1].logStreamName)
      local evs = logs:events("/aws/lambda/echo", streams[1].logStreamName)
      assert.equal(4, #evs)
      assert.equal("echo from echo\t" .. rid, evs[2].message)
      -- without Tail there is no LogResult
      assert.is_nil(assert(invoke({ FunctionName = "echo" })).LogResult)
    end)

    it("io.write goes to the log like print, partial lines included", function()
      local out = assert(invoke({ FunctionName = "writer", LogType = "Tail" }))
      assert.equal('"written"', out.Payload)
      local lines = {}
      for line in core.base64_decode(out.LogResult):gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.same({ "part one, part two", "second line", "printed", "no newline at the end" },
        { lines[2], lines[3], lines[4], lines[5] })
      assert.matches("^END RequestId", lines[6])
    end)

    it("LogResult holds only the last 4 KB", function()
      local out = assert(invoke({ FunctionName = "chatty", LogType = "Tail", Payload = '{"lines": 100}' }))
      local log = core.base64_decode(out.LogResult)
      assert.equal(4096, #log)
      assert.matches("END RequestId", log)
      assert.not_matches("START RequestId", log)
      assert.matches("line 00100 ", log)
      assert.not_matches("line 00001 ", log)
    end)

    it("a handler error gives 200, FunctionError Unhandled and the error payload", function()
      local out = assert(invoke({ FunctionName = "fail", Payload = '{"why": "disk"}', LogType = "Tail" }))
      assert.equal(200, out.StatusCode)
      assert.equal("Unhandled", out.FunctionError)
      local p = payload(out)
      assert.equal("boom: disk", p.errorMessage)
      assert.equal("string", type(p.errorType))
      assert.equal("table", type(p.stackTrace))
      assert.matches("about to fail", core.base64_decode(out.LogResult))
      p = payload(assert(invoke({ FunctionName = "custom_error" })))
      assert.equal("InventoryError", p.errorType)
      assert.equal("out of stock", p.errorMessage)
      out = assert(invoke({ FunctionName = "broken" }))
      assert.equal("Unhandled", out.FunctionError)
      assert.equal("Runtime.ImportModuleError", payload(out).errorType)
      -- os.exit would stop the endpoint: in a handler it raises instead
      out = assert(invoke({ FunctionName = "quits" }))
      assert.equal("Unhandled", out.FunctionError)
      assert.matches("os.exit is not available", payload(out).errorMessage)
      out = assert(invoke({ FunctionName = "marshal" }))
      assert.equal("Unhandled", out.FunctionError)
      assert.equal("Runtime.MarshalError", payload(out).errorType)
    end)

    it("a waiting handler is stopped at its timeout", function()
      local out = assert(invoke({ FunctionName = "slow", Payload = '{"seconds": 30}', LogType = "Tail" }))
      assert.equal("Unhandled", out.FunctionError)
      assert.matches("Task timed out after 1%.00 seconds", payload(out).errorMessage)
      local log = core.base64_decode(out.LogResult)
      assert.matches("sleeping", log)
      assert.not_matches("woke up", log)
      assert.matches("Task timed out after 1%.00 seconds", log)
      -- and a quick one is not
      out = assert(invoke({ FunctionName = "slow", Payload = '{"seconds": 0}' }))
      assert.is_nil(out.FunctionError)
      assert.equal('"slept"', out.Payload)
    end)

    it("a busy pure-Lua handler is stopped at its timeout", function()
      local out = assert(invoke({ FunctionName = "busy", Payload = '{"seconds": 30}' }))
      assert.equal("Unhandled", out.FunctionError)
      assert.matches("Task timed out after 1%.00 seconds", payload(out).errorMessage)
      -- the hook does not outlive the invocation
      assert.is_nil(debug.gethook())
    end)

    it("DryRun answers 204 without running; Event answers 202 and runs in the background", function()
      local out = assert(invoke({ FunctionName = "echo", InvocationType = "DryRun" }))
      assert.equal(204, out.StatusCode)
      assert.is_nil(out.Payload)
      assert.is_nil(logs:events("/aws/lambda/echo", lam:log_stream("echo"))) -- nothing ran
      run(function()
        out = assert(lam:call("Invoke", { FunctionName = "echo", InvocationType = "Event", Payload = '{"x": 1}' }))
        assert.equal(202, out.StatusCode)
        assert.is_nil(out.Payload)
        assert.equal(1, lam:pending())
      end)
      -- aws.run returned: the background task has finished and logged
      assert.equal(0, lam:pending())
      local evs = logs:events("/aws/lambda/echo", lam:log_stream("echo"))
      assert.matches("^START RequestId", evs[1].message)
      assert.matches("^echo from echo", evs[2].message)
    end)

    it("close stops background invocations and their handlers", function()
      write(fdir .. "/marker.lua", "local aws = require 'aio_aws'\n"
        .. "return function(event) aws.sleep(event.seconds); package.loaded.spec_lambda_marker = true end\n")
      package.loaded.spec_lambda_marker = nil
      run(function()
        assert(lam:call("Invoke", { FunctionName = "marker", InvocationType = "Event", Payload = '{"seconds": 2}' }))
        while (lam.per_function.marker or 0) == 0 do aws.sleep(0.01) end -- running
        lam:close()
      end)
      -- aws.run has waited for every task: the handler was cancelled at its sleep
      assert.is_nil(package.loaded.spec_lambda_marker)
      assert.equal(0, lam:pending())
    end)

    it("reserved concurrency gives 429 TooManyRequestsException", function()
      local r1, r2 = run(function()
        package.loaded.spec_lambda_gate = aws.Event()
        local t1 = aws.spawn(function() return lam:call("Invoke", { FunctionName = "gate" }) end)
        -- wait until the first one holds the function's only slot
        while (lam.per_function.gate or 0) == 0 do aws.sleep(0.01) end
        local out, err = lam:call("Invoke", { FunctionName = "gate" })
        assert.is_nil(out)
        package.loaded.spec_lambda_gate:set()
        return assert(t1:wait()), err
      end)
      package.loaded.spec_lambda_gate = nil
      assert.equal(200, r1.StatusCode)
      assert.equal('"passed"', r1.Payload)
      assert.equal("TooManyRequestsException", r2.code)
      assert.equal(429, r2.status)
      assert.equal("ReservedFunctionConcurrentInvocationLimitExceeded", r2.fields.Reason)
    end)

    it("a file whose top level never ends is stopped after the init timeout", function()
      write(fdir .. "/spins.lua", "while true do end\n")
      local quick = lambda_mod.new{ functions_dir = fdir, lambda_init_timeout = 0.2 }
      local out = assert(run(function() return quick:call("Invoke", { FunctionName = "spins" }) end))
      assert.equal("Unhandled", out.FunctionError)
      assert.equal("Runtime.ImportModuleError", payload(out).errorType)
      assert.matches("init timeout", payload(out).errorMessage)
      assert.equal("Failed", assert(quick:call("GetFunction", { FunctionName = "spins" })).Configuration.State)
      assert.is_nil(debug.gethook())
    end)

    it("the account concurrency limit gives 429 too", function()
      local small = lambda_mod.new{ functions_dir = fdir, lambda_concurrency = 2 }
      local results = run(function()
        local tasks = {}
        for i = 1, 3 do
          tasks[i] = aws.spawn(function()
            local out, err = small:call("Invoke", { FunctionName = "slow", Payload = '{"seconds": 0.5}' })
            return out and out.StatusCode or err.code
          end)
        end
        local r = {}
        for i = 1, 3 do r[i] = tasks[i]:wait() end
        return r
      end)
      table.sort(results, function(a, b) return tostring(a) < tostring(b) end)
      assert.same({ 200, 200, "TooManyRequestsException" }, results)
    end)

    it("request errors", function()
      local _, err = invoke({ FunctionName = "nope" })
      assert.equal("ResourceNotFoundException", err.code)
      assert.equal(404, err.status)
      _, err = invoke({ FunctionName = "echo", Qualifier = "1" })
      assert.equal("ResourceNotFoundException", err.code)
      _, err = invoke({ FunctionName = "echo", Payload = "{not json" })
      assert.equal("InvalidRequestContentException", err.code)
      assert.equal(400, err.status)
      -- 6 MB = 6,291,456 bytes for RequestResponse
      local big = '"' .. string.rep("a", 6291456 - 2) .. '"'
      assert.equal(200, assert(invoke({ FunctionName = "echo", Payload = big })).StatusCode)
      _, err = invoke({ FunctionName = "echo", Payload = big .. " " })
      assert.equal("RequestEntityTooLargeException", err.code)
      assert.equal(413, err.status)
      -- 256 KB for Event
      _, err = invoke({ FunctionName = "echo", InvocationType = "Event", Payload = string.rep(" ", 262145) })
      assert.equal("RequestEntityTooLargeException", err.code)
      _, err = invoke({ FunctionName = "echo", InvocationType = "Later" })
      assert.equal("InvalidParameterValueException", err.code)
      _, err = invoke({ FunctionName = "echo", LogType = "All" })
      assert.equal("InvalidParameterValueException", err.code)
      _, err = invoke({})
      assert.equal("InvalidParameterValueException", err.code)
    end)

    it("misuse raises", function()
      assert.has_error(function() lambda_mod.new() end)
      assert.has_error(function() lambda_mod.new{ functions_dir = 1 } end)
      assert.has_error(function() lambda_mod.new{ lambda_concurrency = 0 } end)
      assert.has_error(function() lam:call(5) end)
      assert.has_error(function() lam:call("Invoke", "x") end)
      local _, err = lam:call("CreateFunction", {})
      assert.equal("UnknownOperationException", err.code)
    end)
  end)
end)

-- Through a real endpoint on loopback with the project's own client.
describe("emulator lambda (live, through the endpoint)", function()
  local emulator = require "aio_aws.emulator"
  local dir, fdir
  before_each(function()
    dir, fdir = tmpdir(), tmpdir()
    for _, name in ipairs(store.list_dir(FIXTURES)) do copy(FIXTURES .. "/" .. name, fdir .. "/" .. name) end
    write(fdir .. "/gate.lua", GATE)
  end)
  after_each(function() rm_rf(dir); rm_rf(fdir) end)

  local function with_lambda(fn, faults)
    return run(function()
      local em = assert(emulator.start{ data_dir = dir, port = 0, functions_dir = fdir, faults = faults })
      local session = assert(aws.session{ region = "us-east-1",
        credentials = { access_key = em.access_key, secret_key = em.secret_key } })
      -- one attempt: a 429 must reach the test, not be retried away
      local lam = assert(session:client("lambda", { endpoint_url = em.url, retries = { max_attempts = 1 },
        read_timeout = 60 }))
      local logs = assert(session:client("logs", { endpoint_url = em.url }))
      local ok, err = pcall(fn, lam, logs, em)
      em:close()
      if not ok then error(err, 0) end
    end)
  end

  it("ListFunctions and GetFunction", function()
    with_lambda(function(lam)
      local out = assert(lam:list_functions{})
      assert.equal(11, #out.Functions)
      local names = {}
      for _, f in ipairs(out.Functions) do names[f.FunctionName] = f end
      assert.equal("arn:aws:lambda:us-east-1:123456789012:function:echo", names.echo.FunctionArn)
      local g = assert(lam:get_function{ FunctionName = "configured" })
      assert.equal(10, g.Configuration.Timeout)
      assert.equal(256, g.Configuration.MemorySize)
      assert.equal(1, g.Concurrency.ReservedConcurrentExecutions)
      local _, err = lam:get_function{ FunctionName = "nope" }
      assert.equal("ResourceNotFoundException", err.code)
      assert.equal(404, err.status)
    end)
  end)

  it("Invoke: result, Tail logs, CloudWatch Logs, errors and invocation types", function()
    with_lambda(function(lam, logs)
      local out = assert(lam:invoke{ FunctionName = "echo", Payload = '{"k": "v"}', LogType = "Tail" })
      assert.equal(200, out.StatusCode)
      assert.equal("$LATEST", out.ExecutedVersion)
      local p = cjson.decode(out.Payload)
      assert.equal("v", p.event.k)
      local log = core.base64_decode(out.LogResult)
      assert.matches("^START RequestId: " .. p.request_id:gsub("%-", "%%-") .. " Version: %$LATEST\n", log)
      assert.matches("\nREPORT RequestId: [^\n]+Duration: [%d.]+ ms", log)
      local streams = assert(logs:describe_log_streams{ logGroupName = "/aws/lambda/echo" }).logStreams
      local ev = assert(logs:get_log_events{ logGroupName = "/aws/lambda/echo",
        logStreamName = streams[1].logStreamName, startFromHead = true }).events
      assert.equal("echo from echo\t" .. p.request_id, ev[2].message)

      out = assert(lam:invoke{ FunctionName = "fail", Payload = '{"why": "x"}' })
      assert.equal(200, out.StatusCode)
      assert.equal("Unhandled", out.FunctionError)
      assert.equal("boom: x", cjson.decode(out.Payload).errorMessage)

      out = assert(lam:invoke{ FunctionName = "echo", InvocationType = "DryRun" })
      assert.equal(204, out.StatusCode)
      out = assert(lam:invoke{ FunctionName = "echo", InvocationType = "Event", Payload = "{}" })
      assert.equal(202, out.StatusCode)

      local _, err = lam:invoke{ FunctionName = "nope" }
      assert.equal("ResourceNotFoundException", err.code)
      assert.equal(404, err.status)
      _, err = lam:invoke{ FunctionName = "echo", Qualifier = "7" }
      assert.equal("ResourceNotFoundException", err.code)
      _, err = lam:invoke{ FunctionName = "echo", Payload = "{oops" }
      assert.equal("InvalidRequestContentException", err.code)
      assert.equal(400, err.status)
      -- over 6 MB: the server spools the body to a file; still 413
      _, err = lam:invoke{ FunctionName = "echo", Payload = '"' .. string.rep("z", 6291456) .. '"' }
      assert.equal("RequestEntityTooLargeException", err.code)
      assert.equal(413, err.status)
    end)
  end)

  it("timeouts, concurrency and handlers that call the endpoint themselves", function()
    with_lambda(function(lam, _, em)
      local out = assert(lam:invoke{ FunctionName = "slow", Payload = '{"seconds": 20}' })
      assert.equal("Unhandled", out.FunctionError)
      assert.matches("Task timed out after 1%.00 seconds", cjson.decode(out.Payload).errorMessage)

      package.loaded.spec_lambda_gate = aws.Event()
      local first = aws.spawn(function() return lam:invoke{ FunctionName = "gate" } end)
      local svc = em.services.lambda
      while (svc.per_function.gate or 0) == 0 do aws.sleep(0.01) end -- the first holds the only slot
      local _, err = lam:invoke{ FunctionName = "gate" }
      package.loaded.spec_lambda_gate:set()
      assert.equal("TooManyRequestsException", err.code)
      assert.equal(429, err.status)
      assert.equal(200, assert(first:wait()).StatusCode)
      package.loaded.spec_lambda_gate = nil

      local t = os.time() * 1000
      out = assert(lam:invoke{ FunctionName = "caller",
        Payload = cjson.encode({ group = "from-lambda", stream = "s", timestamp = t, message = "hello from a handler" }) })
      assert.is_nil(out.FunctionError, out.Payload)
      assert.same({ messages = { "hello from a handler" } }, cjson.decode(out.Payload))
    end)
  end)

  it("the throttle fault answers TooManyRequestsException 429", function()
    with_lambda(function(lam)
      local _, err = lam:invoke{ FunctionName = "echo" }
      assert.equal("TooManyRequestsException", err.code)
      assert.equal(429, err.status)
    end, { throttle_rate = 1 })
  end)
end)
