-- luacheck: std +busted
-- Parameter validation (aio_aws.validate) against botocore's own
-- ParamValidator (Debian's /usr/bin/python3 and python3-botocore, whose data
-- the bundled models were generated from): random parameters, mostly valid
-- with mutations (missing members, unknown keys, wrong types, short strings
-- counted in characters, short lists, small numbers, unions with 0 or 2
-- members, bad documents), for five real operations and a hand-made model
-- with every shape type and trait the validator reads. Both sides must
-- report the same set of (reason, path) pairs. Hand cases cover what
-- botocore cannot check for us: Lua-specific types, the deliberate
-- differences, messages, strict bounds, speed and misuse.
local validate = require "aio_aws.validate"
local model = require "aio_aws.model"
local cjson = require "cjson"
local proc = require "support.proc"
local JSON = require "aio_aws.model.json"
local harness = require "support.botocore_harness"

-- Reads [{service, model?, op, params}] (JSON; {"__set__": 1} stands for a
-- value no JSON can carry, made a Python set), writes for each case the
-- sorted list of "reason|name|extra" botocore's ParamValidator reports.
local HARNESS = [==[
import json, sys
import botocore.model
import botocore.session
from botocore.validate import ParamValidator

def hook(d):
    if set(d.keys()) == {"__set__"}:
        return {1, 2}
    return d

session = botocore.session.get_session()
models = {}
out = []
for case in json.load(sys.stdin, object_hook=hook):
    key = case["service"]
    if key not in models:
        if case.get("model"):
            models[key] = botocore.model.ServiceModel(case["model"], service_name=key)
        else:
            models[key] = session.get_service_model(key)
    shape = models[key].operation_model(case["op"]).input_shape
    report = ParamValidator().validate(case["params"], shape)
    found = []
    for reason, name, extra in report._errors:
        detail = extra.get("required_name") or extra.get("unknown_param") or ""
        found.append("%s|%s|%s" % (reason, name, detail))
    out.append(sorted(found))
json.dump(out, sys.stdout)
]==]

local work

-- ------------------------------------------------------------ JSON out

-- Lists made by the generator are marked here (weak keys), so an empty list
-- encodes as [] and a table of string keys where a list belongs as {}.
local LISTS = setmetatable({}, { __mode = "k" })
local function list(t)
  LISTS[t] = true
  return t
end

local function encode(v, buf)
  local tv = type(v)
  if tv == "string" then
    buf[#buf + 1] = cjson.encode(v)
  elseif tv == "number" then
    if math.type(v) == "integer" then buf[#buf + 1] = string.format("%d", v)
    else
      local s = string.format("%.17g", v)
      if not s:find("[%.eEn]") then s = s .. ".0" end
      buf[#buf + 1] = s
    end
  elseif tv == "boolean" then
    buf[#buf + 1] = tostring(v)
  elseif tv == "function" then
    buf[#buf + 1] = '{"__set__": 1}'
  elseif LISTS[v] or (tv == "table" and v[1] ~= nil) then
    buf[#buf + 1] = "["
    for i, x in ipairs(v) do
      if i > 1 then buf[#buf + 1] = "," end
      encode(x, buf)
    end
    buf[#buf + 1] = "]"
  else
    buf[#buf + 1] = "{"
    local first = true
    for k, x in pairs(v) do
      if not first then buf[#buf + 1] = "," end
      first = false
      buf[#buf + 1] = cjson.encode(tostring(k)) .. ":"
      encode(x, buf)
    end
    buf[#buf + 1] = "}"
  end
  return buf
end

local function botocore(cases)
  local buf = { "[" }
  for i, c in ipairs(cases) do
    if i > 1 then buf[#buf + 1] = "," end
    buf[#buf + 1] = '{"service":' .. cjson.encode(c.service) .. ',"op":' .. cjson.encode(c.op)
    if c.raw_model then buf[#buf + 1] = ',"model":' .. cjson.encode(c.raw_model) end
    buf[#buf + 1] = ',"params":'
    encode(c.params, buf)
    buf[#buf + 1] = "}"
  end
  buf[#buf + 1] = "]"
  return harness.run(work, HARNESS, table.concat(buf))
end

-- ------------------------------------------------------------ paths

-- Our path syntax -> segments: {"member", name} | {"index", i} | {"key", k}.
local UNESCAPE = { n = "\n", t = "\t", r = "\r" }
local function segments(path)
  local segs, i = {}, 1
  while i <= #path do
    local c = path:sub(i, i)
    if c == "." then
      i = i + 1
    elseif c == "[" and path:sub(i + 1, i + 1) == '"' then
      local j, parts = i + 2, {}
      while true do
        local ch = path:sub(j, j)
        assert(ch ~= "", "unterminated key in " .. path)
        if ch == "\\" then
          local nx = path:sub(j + 1, j + 1)
          parts[#parts + 1] = UNESCAPE[nx] or nx
          j = j + 2
        elseif ch == '"' then
          break
        else
          parts[#parts + 1] = ch
          j = j + 1
        end
      end
      segs[#segs + 1] = { "key", table.concat(parts) }
      assert(path:sub(j, j + 1) == '"]', "bad key in " .. path)
      i = j + 2
    elseif c == "[" then
      local num = assert(path:match("^%[(%d+)%]", i), "bad index in " .. path)
      segs[#segs + 1] = { "index", tonumber(num) }
      i = i + #num + 2
    else
      local name = path:match("^[^%.%[]+", i)
      segs[#segs + 1] = { "member", name }
      i = i + #name
    end
  end
  return segs
end

-- botocore's names: ".member", "[i]" 0-based, ".key" for a map value,
-- "map (key: k)" for a map key.
local function botocore_name(segs, n)
  local out = {}
  for i = 1, n do
    local kind, v = segs[i][1], segs[i][2]
    if kind == "index" then out[#out + 1] = "[" .. (v - 1) .. "]"
    else out[#out + 1] = "." .. v end
  end
  return table.concat(out)
end

-- One of our errors as botocore's "reason|name|extra".
local function as_botocore(e)
  local segs = segments(e.path)
  local n = #segs
  if e.kind == "missing required field" or e.kind == "unknown field" then
    return ("%s|%s|%s"):format(e.kind, botocore_name(segs, n - 1), segs[n][2])
  elseif e.key then
    return ("%s|%s (key: %s)|"):format(e.kind, botocore_name(segs, n - 1), segs[n][2])
  end
  return ("%s|%s|"):format(e.kind, botocore_name(segs, n))
end

-- ------------------------------------------------------------ generator

local rng = harness.rng

-- Characters of 1 to 4 UTF-8 bytes: lengths count characters, not bytes.
local CHARS = { "a", "b", "Z", "0", "-", "_", " ", "é", "ß", "Ж", "漢", "字", "🙂", "𝄞" }

local function text(r, n)
  local out = {}
  for i = 1, n do out[i] = CHARS[r(#CHARS)] end
  return table.concat(out)
end

-- A string of `n` characters that has at least `bytes` bytes (multi-byte
-- characters: too short in characters, long enough in bytes).
local function wide_text(n, bytes)
  local s = string.rep("🙂", n)
  assert(#s >= bytes or n == 0)
  return s
end

local WRONG = { -- values of the wrong type for each type, all wrong in both languages
  string = { 5, 2.5, true, function() end },
  integer = { "5", 2.5, function() end },
  long = { "5", 2.5, function() end },
  float = { "1.5", function() end },
  double = { "1.5", function() end },
  boolean = { "true", 1, function() end },
  blob = { 42, 2.5, true, function() end },
  timestamp = { "not-a-date", "2021-13-45T99:00:00Z", function() end },
}

local gen -- forward

local function gen_string(ref, r, mutate)
  local mn, mx = ref.target.min, ref.target.max
  if mutate and r(3) == 1 and (mn or ref.hostLabel) then
    local want = (mn or 1) - 1
    -- too short in characters; with multi-byte characters often long enough in bytes
    if r(2) == 1 then return wide_text(want, mn or 1) end
    return text(r, want)
  end
  if mutate and r(3) == 1 then local w = WRONG.string return w[r(#w)] end
  if ref.enum and r(4) > 1 then return ref.enum[r(#ref.enum)] end
  local lo = mn or (ref.hostLabel and 1) or 0
  local hi = lo + 6
  if mx and hi > mx then hi = mx end
  if hi < lo then hi = lo end
  return text(r, lo + r(hi - lo + 1) - 1)
end

local function gen_number(ref, r, mutate, t)
  local mn = ref.target.min
  if mutate then
    if mn and r(2) == 1 then return (t == "float" or t == "double") and mn - 0.5 or mn - r(3) end
    local w = WRONG[t]
    return w[r(#w)]
  end
  local base = mn or -3
  if t == "float" or t == "double" then return base + r(64) / 4 end
  return base + r(20) - 1
end

local function gen_document(r, depth, mutate)
  local pick = r(depth > 2 and 4 or 6)
  if mutate and depth == 1 and r(2) == 1 then return function() end end
  if pick == 1 then return text(r, r(4)) end
  if pick == 2 then return r(1000) - 500 end
  if pick == 3 then return r(2) == 1 end
  if pick == 4 then return r(100) / 8 end
  if pick == 5 then
    local t = list{}
    for i = 1, r(3) - 1 do
      -- invalid values only directly in lists: botocore names a bad value
      -- inside an object by its key alone (validate.py _validate_document)
      t[i] = (mutate and r(3) == 1) and function() end or gen_document(r, depth + 1, false)
    end
    return t
  end
  local t = {}
  for _ = 1, r(3) - 1 do t["k" .. r(50)] = gen_document(r, depth + 1, false) end
  return t
end

function gen(ref, r, depth, rate)
  local mutate = r() < rate
  local t = ref.type
  if t == "structure" and ref.document then return gen_document(r, 1, mutate) end
  if t == "string" and ref.jsonvalue and ref.location == "header" then
    if mutate then return { a = function() end } end
    return { a = 1, b = list{ "x", true } }
  end
  if t == "string" then return gen_string(ref, r, mutate)
  elseif t == "integer" or t == "long" or t == "float" or t == "double" then return gen_number(ref, r, mutate, t)
  elseif t == "boolean" then
    if mutate then local w = WRONG.boolean return w[r(#w)] end
    return r(2) == 1
  elseif t == "blob" then
    if mutate then local w = WRONG.blob return w[r(#w)] end
    return text(r, r(5))
  elseif t == "timestamp" then
    if mutate then local w = WRONG.timestamp return w[r(#w)] end
    local c = r(3)
    if c == 1 then return "2021-03-04T05:06:07Z" elseif c == 2 then return 1600000000 end
    return 1600000000.5
  elseif t == "list" then
    local mn = ref.target.min or 0
    if mutate then
      local c = r(3)
      if c == 1 and mn > 0 then return list{} end
      if c == 2 then return { notalist = 1 } end
      return "scalar"
    end
    local n = mn + r(depth > 3 and 1 or 3) - 1
    local out = list{}
    for i = 1, n do out[i] = gen(ref.member, r, depth + 1, rate) end
    return out
  elseif t == "map" then
    if mutate and r(2) == 1 then return list{ "a", "b" } end
    local out = {}
    for _ = 1, r(depth > 3 and 1 or 3) - 1 do
      local key = gen_string(ref.key, r, mutate and r(2) == 1)
      if type(key) == "string" then out[key] = gen(ref.value, r, depth + 1, rate) end
    end
    return out
  elseif t == "structure" then
    if mutate and r(4) == 1 then return r(2) == 1 and list{ "x" } or "scalar" end
    local out = {}
    local required = {}
    for _, name in ipairs(ref.target.required or {}) do required[name] = true end
    local names = ref.member_names
    if ref.union then
      -- one member, or (mutated) none or two
      local count = mutate and (r(2) == 1 and 0 or 2) or 1
      for _ = 1, count do
        local name = names[r(#names)]
        out[name] = gen(ref.members[name], r, depth + 1, rate)
      end
    else
      for _, name in ipairs(names) do
        local want = required[name] or (depth < 4 and r(5) <= 2)
        if required[name] and mutate and r(3) == 1 then want = false end
        if want then out[name] = gen(ref.members[name], r, depth + 1, rate) end
      end
    end
    if mutate and r(3) == 1 then out["Unknown" .. r(9)] = "x" end
    return out
  end
  error("generator: no rule for type " .. tostring(t))
end

-- ------------------------------------------------------------ a model with everything

local CUSTOM = {
  metadata = { apiVersion = "2021-01-01", endpointPrefix = "everything", protocol = "rest-json",
    serviceId = "Everything", signatureVersion = "v4" },
  operations = {
    DoAll = { name = "DoAll", http = { method = "POST", requestUri = "/all" },
      input = { shape = "DoAllInput" } },
  },
  shapes = {
    DoAllInput = { type = "structure", required = { "Name", "Items" }, members = {
      Name = { shape = "NameString" },
      Label = { shape = "PlainString", hostLabel = true },
      Count = { shape = "Count" }, Big = { shape = "Big" }, Ratio = { shape = "Ratio" },
      Frac = { shape = "Frac" }, Flag = { shape = "Flag" }, Data = { shape = "Data" },
      When = { shape = "When" }, Tags = { shape = "Tags" }, Items = { shape = "Items" },
      Choice = { shape = "Choice" }, Doc = { shape = "Doc" },
      Meta = { shape = "PlainString", location = "header", locationName = "x-meta", jsonvalue = true },
      Tree = { shape = "Node" }, Mode = { shape = "Mode" },
    } },
    NameString = { type = "string", min = 3, max = 10 },
    PlainString = { type = "string" },
    KeyString = { type = "string", min = 2, max = 5 },
    Count = { type = "integer", min = 1, max = 100 },
    Big = { type = "long", min = -5 },
    Ratio = { type = "double", min = 0.5 },
    Frac = { type = "float" },
    Flag = { type = "boolean" },
    Data = { type = "blob", min = 2 },
    When = { type = "timestamp" },
    Mode = { type = "string", enum = { "FAST", "SLOW" } },
    Tags = { type = "map", key = { shape = "KeyString" }, value = { shape = "NameString" }, min = 1, max = 3 },
    Items = { type = "list", member = { shape = "Item" }, min = 1, max = 4 },
    Item = { type = "structure", required = { "Id" }, members = {
      Id = { shape = "NameString" }, Extra = { shape = "Count" } } },
    Choice = { type = "structure", union = true, members = {
      A = { shape = "PlainString" }, B = { shape = "Count" }, C = { shape = "Item" } } },
    Doc = { type = "structure", members = {}, document = true },
    Node = { type = "structure", members = { Value = { shape = "NameString" }, Children = { shape = "Nodes" } } },
    Nodes = { type = "list", member = { shape = "Node" } },
  },
}

local REAL = {
  { "batch", "SubmitJob" }, { "s3", "PutObject" }, { "dynamodb", "PutItem" },
  { "logs", "PutLogEvents" }, { "sqs", "SendMessageBatch" },
}

local compared, errors_matched = 0, 0

local function compare_cases(svc, service, op_name, raw_model, count, seed, rate)
  local r = rng(seed)
  local op = svc:operation(op_name)
  local cases = {}
  for i = 1, count do
    cases[i] = { service = service, op = op_name, raw_model = raw_model, params = gen(op.input, r, 1, rate) }
  end
  local expected = botocore(cases)
  for i, case in ipairs(cases) do
    local ok, err = validate.params(svc, op_name, case.params)
    local got = {}
    if not ok then
      assert.equal("ParamValidation", err.code)
      for j, e in ipairs(err.errors) do got[j] = as_botocore(e) end
    end
    table.sort(got)
    local want = expected[i]
    if #want == 0 then want = {} end
    if #got ~= #want or table.concat(got, "\n") ~= table.concat(want, "\n") then
      local buf = encode(case.params, {})
      error(("%s %s case %d differs from botocore\nparams: %s\nours:     %s\nbotocore: %s"):format(
        service, op_name, i, table.concat(buf), table.concat(got, "; "), table.concat(want, "; ")), 0)
    end
    compared = compared + 1
    errors_matched = errors_matched + #got
  end
end

describe("aio_aws.validate", function()
  setup(function() work = proc.tmpdir("validate") end)
  teardown(function() if work then proc.rmdir(work) end end)

  describe("against botocore's ParamValidator", function()
    for _, pair in ipairs(REAL) do
      it(pair[1] .. " " .. pair[2], function()
        local svc = assert(model.load(pair[1]))
        compare_cases(svc, pair[1], pair[2], nil, 300, #pair[1] * 7919 + #pair[2], 0.06)
      end)
    end

    it("a model with every type, unions, documents, jsonvalue headers, host labels", function()
      local svc = model.new(CUSTOM, { name = "everything" })
      compare_cases(svc, "everything", "DoAll", CUSTOM, 800, 4242, 0.12)
    end)

    it("compared enough inputs and errors to mean something", function()
      assert.is_true(compared >= 2000, "compared " .. compared)
      assert.is_true(errors_matched >= 1000, "matched " .. errors_matched .. " errors")
    end)
  end)

  describe("hand cases", function()
    local svc, batch
    setup(function()
      svc = model.new(CUSTOM, { name = "everything" })
      batch = assert(model.load("batch"))
    end)

    local function errs(params, opts)
      local ok, err = validate.params(svc, "DoAll", params, opts)
      if ok then return {} end
      local out = {}
      for i, e in ipairs(err.errors) do out[i] = e.kind .. " @ " .. e.path .. (e.key and " (key)" or "") end
      return out, err
    end

    local VALID = { Name = "abc", Items = { { Id = "one" } } }
    local function with(extra)
      local t = { Name = VALID.Name, Items = VALID.Items }
      for k, v in pairs(extra) do t[k] = v end
      return t
    end

    it("valid input is true", function()
      assert.is_true(validate.params(svc, "DoAll", VALID))
      assert.is_true(validate.params(svc, "do_all", VALID))
      assert.same({}, errs(with{ Count = 1, Big = -5, Ratio = 0.5, Frac = -1e30, Flag = false, Data = "xy",
        When = "2020-02-29T12:00:00.5Z", Tags = { ab = "abc" }, Choice = { C = { Id = "abc" } },
        Doc = { a = { 1, 2, { b = false } }, c = JSON.null }, Meta = { x = { 1, 2 } },
        Tree = { Value = "abc", Children = { { Value = "def" } } }, Mode = "ANYTHING" }))
    end)

    it("every error kind, each with its full path", function()
      local found, err = errs({
        Items = { { Id = "one" }, { Id = 7, Extra = 0, Bogus = true }, {} },
        Count = "x", Tags = { [""] = "abc", ok = "no" }, Choice = { A = "a", B = 2 },
        Doc = { 1, print }, Meta = { f = print }, Extra = 1,
        Tree = { Children = { { Children = { { Value = "x" } } } } },
      })
      local want = {
        "missing required field @ Name",
        "unknown field @ Extra",
        "invalid type @ Count",
        "invalid length @ Tags[\"\"] (key)",
        "invalid length @ Tags[\"ok\"]",
        "invalid type @ Items[2].Id",
        "unknown field @ Items[2].Bogus",
        "invalid range @ Items[2].Extra",
        "missing required field @ Items[3].Id",
        "more than one input @ Choice",
        "invalid type for document @ Doc[2]",
        "unable to encode to json @ Meta",
        "invalid length @ Tree.Children[1].Children[1].Value",
      }
      table.sort(want)
      table.sort(found)
      assert.same(want, found)
      assert.equal("ParamValidation", err.code)
      assert.equal("DoAll", err.operation)
      local lines = {}
      for line in err.message:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.equal("Parameter validation failed:", lines[1])
      assert.equal(#err.errors + 1, #lines)
      assert.matches('Missing required parameter in input: "Name"', err.message, 1, true)
      assert.matches('Unknown parameter in Items[2]: "Bogus", must be one of: Extra, Id', err.message, 1, true)
      assert.matches("Invalid length for parameter Tree.Children[1].Children[1].Value, value: 1, valid min length: 3",
        err.message, 1, true)
      assert.matches("Invalid number of parameters set for tagged union structure Choice", err.message, 1, true)
      assert.matches("Invalid value for parameter Items[2].Extra, value: 0, valid min value: 1", err.message, 1, true)
    end)

    it("an empty union, and the top level's own type", function()
      assert.same({ "empty input @ Choice" }, errs(with{ Choice = {} }))
      assert.same({ "invalid type @ " }, errs("params"))
      assert.same({ "invalid type @ " }, errs({ "a", "b" }))
      local _, err = validate.params(svc, "DoAll", 5)
      assert.matches("Invalid type for parameter input, value: 5, type: integer", err.message, 1, true)
    end)

    it("string lengths count characters (UTF-8 code points), not bytes", function()
      assert.same({}, errs(with{ Name = "日本語" }))           -- 3 characters, 9 bytes
      assert.same({ "invalid length @ Name" }, errs(with{ Name = "🙂🙂" })) -- 2 characters, 8 bytes
      assert.same({}, errs(with{ Name = "é🙂ß" }))
      assert.same({ "invalid type @ Name" }, errs(with{ Name = "ab\xff\xfe" })) -- not UTF-8
      local _, err = validate.params(svc, "DoAll", with{ Name = "\xc3" })
      assert.matches("not valid UTF-8", err.message, 1, true)
    end)

    it("only min bounds by default (botocore); max bounds and map sizes with strict", function()
      local long = with{ Name = string.rep("x", 50), Count = 1000, Tags = { ab = "abc", cd = "abc", ef = "abc", gh = "abc" },
        Items = { { Id = "abc" }, { Id = "abc" }, { Id = "abc" }, { Id = "abc" }, { Id = "abc" } } }
      assert.same({}, errs(long))
      local found = errs(long, { strict = true })
      table.sort(found)
      assert.same({ "invalid length @ Items", "invalid length @ Name", "invalid length @ Tags", "invalid range @ Count" }, found)
      assert.same({ "invalid length @ Tags" }, errs(with{ Tags = {} }, { strict = true }))
      assert.same({}, errs(with{ Tags = {} }))
      assert.same({ "invalid length @ Tags[\"toolong\"] (key)" }, errs(with{ Tags = { toolong = "abc" } }, { strict = true }))
      local _, err = validate.params(svc, "DoAll", with{ Count = 101 }, { strict = true })
      assert.matches("valid max value: 100", err.message, 1, true)
    end)

    it("host labels have an implicit min length of 1", function()
      assert.same({ "invalid length @ Label" }, errs(with{ Label = "" }))
      assert.same({}, errs(with{ Label = "x" }))
    end)

    it("numbers: integral floats count as integers, booleans never do", function()
      assert.same({}, errs(with{ Count = 3.0, Big = -5.0 }))  -- botocore rejects a Python float here
      assert.same({ "invalid type @ Count" }, errs(with{ Count = 3.5 }))
      assert.same({ "invalid type @ Count" }, errs(with{ Count = 2 ^ 63 }))
      assert.same({ "invalid type @ Count" }, errs(with{ Count = 0 / 0 }))
      assert.same({ "invalid type @ Count" }, errs(with{ Count = true })) -- botocore accepts True (bool is int)
      assert.same({ "invalid range @ Big" }, errs(with{ Big = math.mininteger }))
      assert.same({}, errs(with{ Ratio = 1, Frac = 0 / 0 }))
      assert.same({}, errs(with{ Frac = "NaN", Ratio = "Infinity" }))
      assert.same({ "invalid type @ Frac" }, errs(with{ Frac = "1.5" }))
      assert.same({ "invalid range @ Ratio" }, errs(with{ Ratio = 0.25 }))
    end)

    it("blobs take strings and file handles; timestamps numbers and parsable strings", function()
      local f = assert(io.open(os.tmpname(), "w+"))
      finally(function() f:close() end)
      assert.same({}, errs(with{ Data = f }))
      assert.same({}, errs(with{ Data = { read = function() return nil end } }))
      assert.same({}, errs(with{ Data = "" }))                 -- blob lengths are not checked
      assert.same({ "invalid type @ Data" }, errs(with{ Data = {} }))
      assert.same({ "invalid type @ Data" }, errs(with{ Data = 12 }))
      for _, ok in ipairs{ 0, 1.5, "2020-01-02T03:04:05Z", "2020-01-02", "Thu, 02 Jan 2020 03:04:05 GMT", "1577934245" } do
        assert.same({}, errs(with{ When = ok }), tostring(ok))
      end
      for _, bad in ipairs{ "soon", "", true, {}, 0 / 0 } do
        assert.same({ "invalid type @ When" }, errs(with{ When = bad }), tostring(bad))
      end
    end)

    it("JSON null counts as absent for members, and is a wrong value in lists and maps", function()
      assert.same({ "missing required field @ Name" }, errs(with{ Name = JSON.null, Count = JSON.null }))
      assert.same({ "invalid type @ Items[2]" }, errs(with{ Items = { { Id = "abc" }, JSON.null } }))
      assert.same({ "invalid type @ Tags[\"ab\"]" }, errs(with{ Tags = { ab = JSON.null } }))
    end)

    it("list and map shapes: sequences for lists, no sequences for maps and structures", function()
      assert.same({ "invalid type @ Items" }, errs(with{ Items = { Id = "abc" } }))
      assert.same({ "invalid type @ Items" }, errs(with{ Items = { [1] = { Id = "abc" }, [3] = { Id = "abc" } } }))
      assert.same({ "invalid type @ Tags" }, errs(with{ Tags = { "ab", "cd" } }))
      assert.same({ "invalid type @ Tags[1.5] (key)" }, errs(with{ Tags = { ab = "abc", [1.5] = "abc" } }))
      assert.same({ "invalid type @ Items[1]" }, errs(with{ Items = { { "abc" } } }))
      assert.same({ "invalid length @ Items" }, errs(with{ Items = setmetatable({}, JSON.array_mt) }))
      assert.same({ "invalid type @ Choice" }, errs(with{ Choice = setmetatable({}, JSON.array_mt) }))
      -- keys aio_aws.model.json adds to decoded objects are not parameters
      local decoded = assert(JSON.decode('{"Name": "abc", "Items": [{"Id": "one"}]}', { order = true }))
      assert.is_true(validate.params(svc, "DoAll", decoded))
    end)

    it("unknown keys that are not strings are named by their value", function()
      -- (a table with [1] would be a sequence, not a structure)
      assert.same({ "unknown field @ [2]", "unknown field @ [true]" }, errs(with{ [2] = "x", [true] = "y" }))
    end)

    it("map keys with quotes and control characters are escaped in paths", function()
      local _, err = validate.params(svc, "DoAll", with{ Tags = { ['a"\n'] = 5 } })
      assert.equal('Tags["a\\"\\n"]', err.errors[1].path)
    end)

    it("values of sensitive shapes are never printed", function()
      local sens = model.new({
        metadata = { protocol = "json", apiVersion = "1", endpointPrefix = "s", jsonVersion = "1.1", targetPrefix = "S" },
        operations = { Put = { name = "Put", http = { method = "POST", requestUri = "/" }, input = { shape = "In" } } },
        shapes = { In = { type = "structure", members = { Secret = { shape = "Secret" }, Pin = { shape = "Pin" } } },
          Secret = { type = "string", min = 20, sensitive = true }, Pin = { type = "integer", min = 1000, sensitive = true } },
      }, { name = "s" })
      local _, err = validate.params(sens, "Put", { Secret = "hunter2", Pin = 12 })
      assert.not_matches("hunter2", err.message, 1, true)
      assert.not_matches("12,", err.message, 1, true)
      assert.matches("value: ***", err.message, 1, true)
      _, err = validate.params(sens, "Put", { Secret = 1234567 })
      assert.not_matches("1234567", err.message, 1, true)
    end)

    it("operations without input take anything, as in botocore", function()
      local s3 = assert(model.load("s3"))
      assert.is_true(validate.params(s3, "ListBuckets", { Whatever = 1 }))
    end)

    it("misuse raises", function()
      assert.has_error(function() validate.params({}, "DoAll", {}) end)
      assert.has_error(function() validate.params(svc, "Nope", {}) end)
      assert.has_error(function() validate.params(svc, 5, {}) end)
      assert.has_error(function() validate.params(svc, "DoAll", {}, "strict") end)
      assert.has_error(function() validate.shape("shape", {}) end)
    end)

    it("validate.shape checks one value against one shape", function()
      local item = svc:operation("DoAll").input.members.Items.member
      assert.is_true(validate.shape(item, { Id = "abc" }))
      local ok, err = validate.shape(item, { Id = "a", Nope = 1 })
      assert.is_nil(ok)
      -- missing members first, then unknown ones, then the members' own errors
      assert.same({ "Nope", "Id" }, { err.errors[1].path, err.errors[2].path })
    end)

    it("a SubmitJob with 50 environment entries allocates nothing and takes microseconds", function()
      local env = {}
      for i = 1, 50 do env[i] = { name = "VAR_" .. i, value = "value " .. i } end
      local params = { jobName = "job", jobQueue = "queue", jobDefinition = "def:1",
        containerOverrides = { environment = env, command = { "run", "--fast" }, vcpus = 2 },
        tags = { team = "data" }, timeout = { attemptDurationSeconds = 600 },
        retryStrategy = { attempts = 3 }, parameters = { a = "b" } }
      assert.is_true(validate.params(batch, "SubmitJob", params))
      collectgarbage("collect")
      collectgarbage("stop")
      local before = collectgarbage("count")
      for _ = 1, 1000 do validate.params(batch, "SubmitJob", params) end
      local grown = collectgarbage("count") - before
      collectgarbage("restart")
      assert.is_true(grown < 1, ("validation allocated %.1f KiB over 1000 calls"):format(grown))
      if os.getenv("AIO_AWS_SANITIZED") ~= "1" then
        local n, t0 = 2000, os.clock()
        for _ = 1, n do validate.params(batch, "SubmitJob", params) end
        local us = (os.clock() - t0) / n * 1e6
        -- about 30 us on a 2020s core; the bound only catches a lost cache
        assert.is_true(us < 1000, ("%.0f us per validation"):format(us))
      end
    end)
  end)
end)
