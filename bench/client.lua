-- The project's AWS client in the client benchmark (see bench/README.md,
-- "Client"): N calls of one operation with K tasks inside aws.run, each
-- task taking the next call number until N are done, against the nginx of
-- bench/client_nginx.lua. Run from the repository root:
--
--   lua5.4 bench/client.lua OP URL N K    OP: head put get list invoke;
--                                         URL: the endpoint (http://127.0.0.1:PORT);
--                                         exit 0 when every call succeeded
--                                         and its output checked out
--   lua5.4 bench/client.lua --probe       exit 0 when the client loads
--   lua5.4 bench/client.lua --parse URL ITERS
--                                         CPU per 1,000-key ListObjectsV2 page,
--                                         in stages (os.clock, ITERS pages)
--
-- Last line on stdout: "setup_cpu_s=S calls_wall_s=W": the CPU (os.clock)
-- spent before the first call (module and model loading, session and
-- clients) and the wall time of the calls.
--
-- The calls are what an application writes: s3:head_object{...} etc. on
-- clients from aws.session{...}:client(...). Both clients get
-- max_pool_connections = K (the default pool is 10, boto3's too) and path
-- addressing (what S3 gets for an IP endpoint either way).
package.path = "lua/?.lua;lua/?/init.lua;bench/?.lua;" .. package.path
package.cpath = "lua/?.so;" .. package.cpath

local aws = require "aio_aws"
local core = require "aio_aws.core"
local fixtures = require "client_nginx"

if arg[1] == "--probe" then
  assert(aws.session{ region = "us-east-1", credentials = { access_key = "AKIDEXAMPLE", secret_key = "x" } })
  os.exit(0)
end

local BUCKET, KEY, FUNCTION = fixtures.BUCKET, fixtures.KEY, fixtures.FUNCTION
-- The same in bench/client_boto3.py.
local PUT_BODY = ("0123456789abcdef"):rep(64)
local INVOKE_PAYLOAD = '{"id":12345,"action":"bench"}'
local CREDENTIALS = { access_key = "AKIDEXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }

local function session()
  return assert(aws.session{ region = fixtures.REGION, credentials = CREDENTIALS })
end

local function clients(url, k, transport)
  local s = session()
  local s3 = assert(s:client("s3", { endpoint_url = url, max_pool_connections = k,
    s3 = { addressing_style = "path" }, transport = transport }))
  local lambda = assert(s:client("lambda", { endpoint_url = url, max_pool_connections = k,
    transport = transport }))
  return s3, lambda
end

-- One call of each operation: returns nil when the output is right, else
-- what is wrong.
local OPS = {
  head = function(s3)
    local out, err = s3:head_object{ Bucket = BUCKET, Key = KEY }
    if not out then return tostring(err) end
    if out.ContentLength ~= fixtures.OBJECT_SIZE or type(out.ETag) ~= "string" then
      return "HeadObject: unexpected output"
    end
  end,
  put = function(s3)
    local out, err = s3:put_object{ Bucket = BUCKET, Key = KEY, Body = PUT_BODY }
    if not out then return tostring(err) end
    if type(out.ETag) ~= "string" then return "PutObject: no ETag" end
  end,
  get = function(s3)
    local out, err = s3:get_object{ Bucket = BUCKET, Key = KEY }
    if not out then return tostring(err) end
    local body, rerr = out.Body:read_all()
    out.Body:close()
    if not body then return tostring(rerr) end
    if #body ~= fixtures.OBJECT_SIZE then return "GetObject: body of " .. #body .. " bytes" end
  end,
  list = function(s3)
    local out, err = s3:list_objects_v2{ Bucket = BUCKET }
    if not out then return tostring(err) end
    if #out.Contents ~= fixtures.LIST_KEYS or out.IsTruncated ~= false
        or not out.Contents[1].Key:find("dt=", 1, true) then
      return "ListObjectsV2: unexpected output"
    end
  end,
  invoke = function(_, lambda)
    local out, err = lambda:invoke{ FunctionName = FUNCTION, Payload = INVOKE_PAYLOAD }
    if not out then return tostring(err) end
    local payload = out.Payload
    if type(payload) == "table" then payload = payload:read_all() end
    if out.StatusCode ~= 200 or payload ~= fixtures.INVOKE_PAYLOAD then return "Invoke: unexpected output" end
  end,
}

local function die(code, ...)
  io.stderr:write("client.lua: ", ...)
  io.stderr:write("\n")
  os.exit(code)
end

local function usage()
  die(2, "usage: lua5.4 bench/client.lua OP URL N K | --probe | --parse URL ITERS")
end

-- CPU seconds per page of fn(), over iters pages (after a short warm-up).
local function per_page(iters, fn)
  for _ = 1, math.min(iters, 5) do fn() end
  collectgarbage()
  local t0 = os.clock()
  for _ = 1, iters do fn() end
  return (os.clock() - t0) / iters
end

-- The parse measurement: one page fetched through the project's raw HTTP,
-- then bytes -> output table in three nested stages.
local function parse_bench(url, iters)
  local http = require "aio_aws.http"
  local model = require "aio_aws.model"
  local protocol = require "aio_aws.protocol"
  local xml = require "aio_aws.protocol.xml"
  local svc = assert(model.load("s3"))
  local ok, err = aws.run(function()
    local res = assert(http.request{ url = url .. "/" .. BUCKET .. "?" .. fixtures.LIST_QUERY })
    assert(res.status == 200, "list page: status " .. tostring(res.status))
    local body, headers = res.body, res.headers
    local function response() return { status = 200, headers = headers, body = body } end
    local s3 = clients(url, 1, function() return response() end)
    local stages = {
      { "xml_decode", "core.xml_decode: bytes -> decoded tree (C, expat)", function()
        assert(xml.decode(body))
      end },
      { "protocol_parse", "protocol.parse: bytes -> output table (decode + shape-directed read)", function()
        assert(protocol.parse(svc, "ListObjectsV2", response()))
      end },
      { "client_call", "s3:list_objects_v2 with a canned response: validate, build, sign, parse, url-decode keys",
        function()
          local out = assert(s3:list_objects_v2{ Bucket = BUCKET })
          assert(#out.Contents == fixtures.LIST_KEYS)
        end },
    }
    io.stdout:write(("page_bytes=%d keys=%d iters=%d\n"):format(#body, fixtures.LIST_KEYS, iters))
    for _, st in ipairs(stages) do
      io.stdout:write(("parse %s %.1f us  # %s\n"):format(st[1], per_page(iters, st[3]) * 1e6, st[2]))
    end
    return true
  end)
  if not ok then die(1, "--parse: ", tostring(err)) end
end

if arg[1] == "--parse" then
  local url, iters = arg[2], math.tointeger(tonumber(arg[3] or ""))
  if not url or not iters or iters < 1 then usage() end
  parse_bench(url, iters)
  os.exit(0)
end

local op, url, n, k = arg[1], arg[2], math.tointeger(tonumber(arg[3] or "")), math.tointeger(tonumber(arg[4] or ""))
local call = OPS[op]
if not call or not url or not n or not k or n < 1 or k < 1 then usage() end

local next_call, failed, first_error = 0, 0, nil
local setup_cpu, t0, t1

local ok, err = aws.run(function()
  local s3, lambda = clients(url, k)
  local function worker()
    while next_call < n do
      next_call = next_call + 1
      local bad = call(s3, lambda)
      if bad then
        failed = failed + 1
        first_error = first_error or bad
      end
    end
  end
  setup_cpu, t0 = os.clock(), core.monotime()
  local workers = {}
  for w = 1, math.min(k, n) do workers[w] = worker end
  local _, errs = aws.gather(table.unpack(workers)) -- one task each
  for _, e in pairs(errs or {}) do
    failed, first_error = failed + 1, first_error or ("task failed: " .. tostring(e))
  end
  t1 = core.monotime()
  return true
end)

if not ok then die(1, "aws.run failed: ", tostring(err)) end
io.stdout:write(("setup_cpu_s=%.6f calls_wall_s=%.6f\n"):format(setup_cpu, t1 - t0))
if failed > 0 then die(1, ("%d of %d calls failed; first: %s"):format(failed, n, first_error)) end
