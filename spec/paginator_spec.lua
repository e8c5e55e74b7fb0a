-- Paginators: page sequences, max_items truncation, resume tokens and
-- build_full_result compared with botocore's own Paginator driven by the
-- same pages; repeated tokens, failures and misuse; live ListObjectsV2
-- over 2,500 keys on s3rver and a paginated Scan on dynalite.
local aws = require "aio_aws"
local cjson = require "cjson"
local session_mod = require "aio_aws.session"
local proc = require "support.proc"
local run = require "support.run"

local CREDS = { access_key = "AKIDEXAMPLE", secret_key = "secret" }

local function new_session(creds)
  return assert(session_mod.new({ region = "us-east-1", credentials = creds or CREDS, config = { env = {} } }))
end

-- A scripted DynamoDB: `pages[key]` answers a Scan whose ExclusiveStartKey
-- has id.S == key ("" for none). Records the requests it saw.
local function fake_dynamodb(pages, seen)
  return function(req)
    local body = cjson.decode(req.body)
    if seen then seen[#seen + 1] = body end
    local key = body.ExclusiveStartKey and body.ExclusiveStartKey.id.S or ""
    local page = pages[key]
    if type(page) == "function" then return page(body) end
    if not page then
      return { status = 400, headers = { ["content-type"] = "application/x-amz-json-1.0" },
        body = cjson.encode({ __type = "com.amazon.coral.validate#ValidationException",
          message = "no page for " .. key }) }
    end
    return { status = 200, headers = { ["content-type"] = "application/x-amz-json-1.0",
      ["x-amzn-requestid"] = "req-" .. key }, body = cjson.encode(page) }
  end
end

-- Pages of `sizes` items each: item ids k1, k2, ...; LastEvaluatedKey
-- chains them; each page has Count/ScannedCount and ConsumedCapacity.
local function scan_pages(sizes)
  local pages, n, prev = {}, 0, ""
  for i, size in ipairs(sizes) do
    local items = {}
    for _ = 1, size do
      n = n + 1
      items[#items + 1] = { id = { S = "k" .. n }, n = { N = tostring(n) } }
    end
    local page = { Items = items, Count = size, ScannedCount = size + 1,
      ConsumedCapacity = { TableName = "t", CapacityUnits = i } }
    if i < #sizes then page.LastEvaluatedKey = { id = { S = "k" .. n } } end
    pages[prev] = page
    prev = "k" .. n
  end
  return pages
end

-- botocore's Paginator on the same pages: for each config, the pages'
-- Items ids, the build_full_result (Items ids, Count, ScannedCount,
-- ConsumedCapacity, NextToken) and the requests' Limit values.
local BOTOCORE = [[
import copy, json, sys
import botocore.session
from botocore.paginate import Paginator
spec = json.load(open(sys.argv[1]))
s = botocore.session.get_session()
op = s.get_service_model('dynamodb').operation_model('Scan')
cfg = s.get_paginator_model('dynamodb').get_paginator('Scan')
out = []
for run in spec['runs']:
    pages = spec['pages']
    limits = []
    def method(**kw):
        limits.append(kw.get('Limit'))
        key = kw['ExclusiveStartKey']['id']['S'] if 'ExclusiveStartKey' in kw else ''
        return copy.deepcopy(pages[key])
    conf = {k: v for k, v in run.items()}
    it = Paginator(method, cfg, op).paginate(TableName="tbl", PaginationConfig=conf)
    seen = [[i['id']['S'] for i in p.get('Items', [])] for p in it]
    first_limits = list(limits)
    it = Paginator(method, cfg, op).paginate(TableName="tbl", PaginationConfig=conf)
    full = it.build_full_result()
    full['Items'] = [i['id']['S'] for i in full.get('Items', [])]
    it = Paginator(method, cfg, op).paginate(TableName="tbl", PaginationConfig=conf)
    found = list(it.search('Items[].id.S'))
    out.append({'pages': seen, 'full': full, 'limits': first_limits, 'search': found})
json.dump(out, sys.stdout)
]]

local function botocore_runs(pages, runs)
  local input, script = os.tmpname(), os.tmpname()
  local f = assert(io.open(input, "w"))
  f:write(cjson.encode({ pages = pages, runs = runs }))
  f:close()
  f = assert(io.open(script, "w"))
  f:write(BOTOCORE)
  f:close()
  local out, ok = proc.sh("/usr/bin/python3 " .. proc.quote(script) .. " " .. proc.quote(input) .. " 2>&1")
  os.remove(input)
  os.remove(script)
  assert(ok, "botocore harness failed: " .. out)
  return cjson.decode(out)
end

local function ids(items)
  local out = {}
  for i, it in ipairs(items or {}) do out[i] = it.id.S end
  return out
end

describe("paginator against botocore's", function()
  local pages = scan_pages({ 5, 5, 3 })
  local runs = {
    {},
    { MaxItems = 7 },
    { MaxItems = 5 },
    { MaxItems = 13 },
    { MaxItems = 20 },
    { PageSize = 4 },
    { MaxItems = 3, PageSize = 5 },
  }
  local want

  setup(function()
    want = botocore_runs(pages, runs)
    -- resume tokens from botocore, then resumed by botocore itself
    local resumed = {}
    for i, r in ipairs(runs) do
      local tok = want[i].full.NextToken
      if tok then resumed[#resumed + 1] = { StartingToken = tok, MaxItems = r.MaxItems } end
    end
    local more = botocore_runs(pages, resumed)
    for i, r in ipairs(resumed) do
      runs[#runs + 1] = r
      want[#want + 1] = more[i]
    end
  end)

  local function lua_opts(r)
    return { max_items = r.MaxItems, page_size = r.PageSize, starting_token = r.StartingToken }
  end

  it("yields the same pages, full results, tokens and Limit values", function()
    assert.is_true(#runs > 7, "resume runs missing")
    run(function()
      for i, r in ipairs(runs) do
        local seen = {}
        local ddb = assert(new_session():client("dynamodb", { endpoint_url = "http://fake",
          transport = fake_dynamodb(pages, seen) }))
        local pager = ddb:paginate("Scan", { TableName = "tbl" }, lua_opts(r))
        local got_pages = {}
        for page in pager:pages() do got_pages[#got_pages + 1] = ids(page.Items) end
        assert.is_nil(pager.err)
        local w = want[i]
        local label = cjson.encode(r)
        assert.are.same(w.pages, got_pages, label)
        local limits = {}
        for j, b in ipairs(seen) do limits[j] = b.Limit or cjson.null end
        assert.are.same(w.limits, limits, label)

        local full = assert(ddb:paginate("Scan", { TableName = "tbl" }, lua_opts(r)):build_full_result())
        assert.are.same(w.full.Items, ids(full.Items), label)
        assert.are.equal(w.full.Count, full.Count, label)
        assert.are.equal(w.full.ScannedCount, full.ScannedCount, label)
        assert.are.same(w.full.ConsumedCapacity, full.ConsumedCapacity, label)
        assert.are.equal(w.full.NextToken, full.NextToken, label) -- byte for byte
        local found = {}
        for v in ddb:paginate("Scan", { TableName = "tbl" }, lua_opts(r)):search("Items[].id.S") do
          found[#found + 1] = v
        end
        assert.are.same(w.search, found, label)
      end
    end)
  end)

  it("resumes from its own tokens until the listing is complete", function()
    run(function()
      local ddb = assert(new_session():client("dynamodb", { endpoint_url = "http://fake",
        transport = fake_dynamodb(pages) }))
      local all, token, rounds = {}, nil, 0
      repeat
        local full = assert(ddb:paginate("Scan", { TableName = "tbl" }, { max_items = 4, starting_token = token })
          :build_full_result())
        for _, id in ipairs(ids(full.Items)) do all[#all + 1] = id end
        token = full.NextToken
        rounds = rounds + 1
      until not token or rounds > 10
      local wantids = {}
      for n = 1, 13 do wantids[n] = "k" .. n end
      assert.are.same(wantids, all)
      assert.are.equal(4, rounds)
    end)
  end)

  it("encodes tokens as botocore does (base64 JSON with boto_truncate_amount)", function()
    run(function()
      local ddb = assert(new_session():client("dynamodb", { endpoint_url = "http://fake",
        transport = fake_dynamodb(pages) }))
      local full = assert(ddb:paginate("Scan", { TableName = "tbl" }, { max_items = 7 }):build_full_result())
      local decoded = require("aio_aws.core").base64_decode(full.NextToken)
      -- page 2 (resumed with ExclusiveStartKey k5) was cut after 2 items
      assert.are.equal('{"ExclusiveStartKey": {"id": {"S": "k5"}}, "boto_truncate_amount": 2}', decoded)
    end)
  end)
end)

describe("paginator failures", function()
  it("stops with PaginationError when the same token comes back twice", function()
    run(function()
      local same = { Items = { { id = { S = "x" } } }, Count = 1, ScannedCount = 1,
        LastEvaluatedKey = { id = { S = "loop" } } }
      local ddb = assert(new_session():client("dynamodb", { endpoint_url = "http://fake",
        transport = fake_dynamodb({ [""] = same, loop = same }) }))
      local pager = ddb:paginate("Scan", { TableName = "tbl" })
      local n = 0
      for _ in pager:pages() do n = n + 1 end
      -- botocore yields the second page, then raises on the next request
      assert.are.equal(2, n)
      assert.are.equal("PaginationError", pager.err.code)
      assert.matches("same next token", pager.err.message)
      local again = ddb:paginate("Scan", { TableName = "tbl" })
      local r, err = again:build_full_result()
      assert.is_nil(r)
      assert.are.equal("PaginationError", err.code)
    end)
  end)

  it("returns a page's AWS error and ends the iteration", function()
    run(function()
      local pages = scan_pages({ 2, 2 })
      pages.k2 = nil -- the second page is answered by a ValidationException
      local ddb = assert(new_session():client("dynamodb", { endpoint_url = "http://fake",
        transport = fake_dynamodb(pages) }))
      local pager = ddb:paginate("Scan", { TableName = "tbl" })
      local n = 0
      for _ in pager do n = n + 1 end -- __call works as an iterator too
      assert.are.equal(1, n)
      assert.are.equal("ValidationException", pager.err.code)
      assert.are.equal(400, pager.err.status)
      local p, err = pager:next_page()
      assert.is_nil(p)
      assert.are.equal("ValidationException", err.code)
      local r, ferr = ddb:paginate("Scan", { TableName = "tbl" }):build_full_result()
      assert.is_nil(r)
      assert.are.equal("ValidationException", ferr.code)
    end)
  end)

  it("returns transport failures and malformed answers", function()
    run(function()
      local ddb = assert(new_session():client("dynamodb", { endpoint_url = "http://fake",
        retries = { max_attempts = 1 },
        transport = function() return nil, require("aio_aws.errors").new("ConnectionError", "refused") end }))
      local pager = ddb:paginate("Scan", { TableName = "tbl" })
      assert.is_nil(pager:next_page())
      assert.are.equal("ConnectionError", pager.err.code)
      local bad = assert(new_session():client("dynamodb", { endpoint_url = "http://fake",
        retries = { max_attempts = 1 },
        transport = function()
          return { status = 200, headers = { ["content-type"] = "application/x-amz-json-1.0" }, body = "{not json" }
        end }))
      local p2 = bad:paginate("Scan", { TableName = "tbl" })
      local page, err = p2:next_page()
      assert.is_nil(page)
      assert.is_not_nil(err)
      assert.is_not_nil(err.code)
      local found = {}
      for v in bad:paginate("Scan", { TableName = "tbl" }):search("Items") do found[#found + 1] = v end
      assert.are.same({}, found)
    end)
  end)

  it("returns ParamValidation for bad operation parameters", function()
    run(function()
      local ddb = assert(new_session():client("dynamodb", { endpoint_url = "http://fake",
        transport = fake_dynamodb({}) }))
      local pager = ddb:paginate("Scan", { TableName = 5 })
      assert.is_nil(pager:next_page())
      assert.are.equal("ParamValidation", pager.err.code)
    end)
  end)

  it("raises on misuse", function()
    local ddb = assert(new_session():client("dynamodb", { endpoint_url = "http://fake", transport = fake_dynamodb({}) }))
    assert.has_error(function() ddb:paginate(5) end)
    assert.has_error(function() ddb:paginate("NoSuchOp", {}) end)
    assert.has_error(function() ddb:paginate("PutItem", {}) end, nil)
    assert.has_error(function() ddb:paginate("Scan", "x") end)
    assert.has_error(function() ddb:paginate("Scan", {}, { max_items = "3" }) end)
    assert.has_error(function() ddb:paginate("Scan", {}, { max_items = 0 }) end)
    assert.has_error(function() ddb:paginate("Scan", {}, { page_size = 2.5 }) end)
    assert.has_error(function() ddb:paginate("Scan", {}, { bogus = 1 }) end)
    assert.has_error(function() ddb:paginate("Scan", {}, { starting_token = "not base64 json!" }) end)
    -- a token naming other inputs than the paginator's
    local other = require("aio_aws.core").base64_encode('{"Marker": "x"}')
    assert.has_error(function() ddb:paginate("Scan", {}, { starting_token = other }) end)
    assert.is_true(ddb:can_paginate("scan"))
    assert.is_false(ddb:can_paginate("PutItem"))
    assert.has_error(function() ddb:get_paginator("PutItem") end)
    -- an operation whose paginator has no limit key: page_size is refused
    local svc = ddb._svc
    local found
    for _, s in ipairs({ "ecs", "iam", "lambda", "logs", "ssm", "s3", "sns", "sqs", "kms", "ecr", "cloudwatch" }) do
      local c = assert(new_session():client(s, { region = "us-east-1" }))
      for op, cfg in pairs(c._svc.paginators or {}) do
        if not cfg.limit_key then found = { c, op } break end
      end
      if found then break end
    end
    assert.is_not_nil(found, "no paginator without a limit key in the bundled models")
    assert.has_error(function() found[1]:paginate(found[2], {}, { page_size = 5 }) end)
    assert.is_not_nil(svc)
    -- waiting outside a task
    local pager = ddb:paginate("Scan", { TableName = "tbl" })
    assert.has_error(function() pager:next_page() end)
  end)

  it("get_paginator works like botocore's client.get_paginator(op).paginate", function()
    run(function()
      local ddb = assert(new_session():client("dynamodb", { endpoint_url = "http://fake",
        transport = fake_dynamodb(scan_pages({ 2, 1 })) }))
      local p = ddb:get_paginator("scan")
      local full = assert(p:paginate({ TableName = "tbl" }):build_full_result())
      assert.are.same({ "k1", "k2", "k3" }, ids(full.Items))
      assert.are.equal(3, full.Count)
      assert.are.equal("Scan", p.operation)
    end)
  end)
end)

describe("paginator against s3rver", function()
  local srv, s3
  setup(function()
    srv = require("support.s3rver").start()
    s3 = assert(new_session({ access_key = srv.access_key_id, secret_key = srv.secret_access_key })
      :client("s3", { endpoint_url = srv.endpoint }))
  end)
  teardown(function()
    if s3 then s3:close() end
    if srv then srv:stop() end
  end)

  it("pages ListObjectsV2 over 2,500 keys with max_items and resumes from NextToken", function()
    run(function()
      assert(s3:create_bucket({ Bucket = "pages" }))
      local sem = aws.Semaphore(32)
      local ts = {}
      for i = 1, 2500 do
        ts[i] = aws.spawn(function()
          return sem:with(function()
            return assert(s3:put_object({ Bucket = "pages", Key = ("k%04d"):format(i), Body = "x" }))
          end)
        end)
      end
      local _, errs = aws.gather(table.unpack(ts))
      assert.is_nil(errs)

      -- whole listing: 3 pages of at most 1,000
      local n, pages = 0, 0
      for page in s3:paginate("ListObjectsV2", { Bucket = "pages" }):pages() do
        pages = pages + 1
        n = n + #(page.Contents or {})
      end
      assert.are.equal(3, pages)
      assert.are.equal(2500, n)

      -- 1,000 at a time in pages of 300 (the last round cut mid-page)
      local keys, token, rounds = {}, nil, 0
      repeat
        local full = assert(s3:paginate("ListObjectsV2", { Bucket = "pages" },
          { max_items = 1000, page_size = 300, starting_token = token }):build_full_result())
        rounds = rounds + 1
        assert.is_true(#full.Contents <= 1000)
        for _, o in ipairs(full.Contents) do keys[#keys + 1] = o.Key end
        token = full.NextToken
      until not token or rounds > 5
      assert.are.equal(3, rounds)
      assert.are.equal(2500, #keys)
      for i = 1, 2500 do assert.are.equal(("k%04d"):format(i), keys[i]) end

      -- ListObjects (v1): output token `NextMarker || Contents[-1].Key`
      local v1 = {}
      for k in s3:paginate("ListObjects", { Bucket = "pages" }, { page_size = 700 }):search("Contents[].Key") do
        v1[#v1 + 1] = k
      end
      assert.are.equal(2500, #v1)
      assert.are.equal("k2500", v1[2500])
    end)
  end)
end)

describe("paginator against dynalite", function()
  local srv, ddb
  setup(function()
    srv = require("support.dynalite").start({ create_table_ms = 0 })
    ddb = assert(new_session():client("dynamodb", { endpoint_url = srv.endpoint }))
  end)
  teardown(function()
    if ddb then ddb:close() end
    if srv then srv:stop() end
  end)

  it("pages a Scan with page_size and max_items and resumes", function()
    run(function()
      assert(ddb:create_table({ TableName = "scan", BillingMode = "PAY_PER_REQUEST",
        KeySchema = { { AttributeName = "id", KeyType = "HASH" } },
        AttributeDefinitions = { { AttributeName = "id", AttributeType = "S" } } }))
      assert(ddb:wait("table_exists", { TableName = "scan" }, { delay = 0.05, max_attempts = 100 }))
      for first = 1, 60, 25 do
        local reqs = {}
        for i = first, math.min(first + 24, 60) do
          reqs[#reqs + 1] = { PutRequest = { Item = { id = { S = ("i%02d"):format(i) } } } }
        end
        assert(ddb:batch_write_item({ RequestItems = { scan = reqs } }))
      end
      local pages = 0
      local pager = ddb:paginate("Scan", { TableName = "scan" }, { page_size = 7 })
      for page in pager:pages() do
        pages = pages + 1
        assert.is_true(page.Count <= 7)
      end
      assert.is_nil(pager.err)
      assert.are.equal(9, pages) -- 8 full pages of 7 and a last one of 4
      local seen, token, rounds = {}, nil, 0
      repeat
        local full = assert(ddb:paginate("Scan", { TableName = "scan" },
          { page_size = 7, max_items = 25, starting_token = token }):build_full_result())
        rounds = rounds + 1
        -- Count is summed over whole pages, Items cut at max_items (botocore too)
        assert.is_true(#full.Items <= 25)
        for _, it in ipairs(full.Items) do
          assert.is_nil(seen[it.id.S], "item returned twice: " .. it.id.S)
          seen[it.id.S] = true
        end
        token = full.NextToken
      until not token or rounds > 10
      local n = 0
      for _ in pairs(seen) do n = n + 1 end
      assert.are.equal(60, n)
      assert.are.equal(3, rounds)
    end)
  end)
end)
