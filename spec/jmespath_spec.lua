-- JMESPath: the compliance suite's cases (spec/fixtures/jmespath/), every
-- paginator and waiter expression of every bundled model evaluated on data
-- shaped like the operation's output, and generated expressions and data
-- compared with Debian's python3-jmespath (the library botocore uses).
local jmespath = require "aio_aws.jmespath"
local model = require "aio_aws.model"
local proc = require "support.proc"

local NULL = jmespath.null

-- Runs Debian's jmespath on a list of {expression, given (JSON text)};
-- answers {ok = true, result} or {ok = false, error = kind}. Errors that
-- are not JMESPath's own (Python TypeErrors on mixed comparisons, which
-- the JMESPath spec defines as null) come back as kind "python".
local ORACLE = [[
import json, sys
import jmespath
from jmespath import exceptions as E
cases = json.load(open(sys.argv[1]))
out = []
for c in cases:
    try:
        data = json.loads(c["given"])
        r = jmespath.search(c["expression"], data)
        out.append({"ok": True, "result": json.dumps(r)})
    except (E.LexerError, E.ParseError, E.IncompleteExpressionError, E.EmptyExpressionError):
        out.append({"ok": False, "error": "syntax"})
    except E.JMESPathTypeError:
        out.append({"ok": False, "error": "invalid-type"})
    except (E.ArityError, E.VariadictArityError):
        out.append({"ok": False, "error": "invalid-arity"})
    except E.UnknownFunctionError:
        out.append({"ok": False, "error": "unknown-function"})
    except ValueError:
        out.append({"ok": False, "error": "invalid-value"})
    except Exception as e:
        out.append({"ok": False, "error": "python", "detail": repr(e)})
json.dump(out, sys.stdout)
]]

local function oracle(cases)
  local input, script = os.tmpname(), os.tmpname()
  local f = assert(io.open(input, "w"))
  local list = {}
  for i, c in ipairs(cases) do
    list[i] = jmespath.object({ { "expression", c.expression }, { "given", c.given } })
  end
  f:write(jmespath.py_dumps(setmetatable(list, jmespath.array_mt)))
  f:close()
  f = assert(io.open(script, "w"))
  f:write(ORACLE)
  f:close()
  local out, ok = proc.sh("/usr/bin/python3 " .. proc.quote(script) .. " " .. proc.quote(input))
  os.remove(input)
  os.remove(script)
  assert(ok, "python3-jmespath oracle failed: " .. out)
  local answers = assert(jmespath.json_decode(out))
  for _, a in ipairs(answers) do
    if a.ok then a.result = jmespath.json_decode(a.result) end
  end
  return answers
end

-- Our answer in the oracle's shape.
local function ours(expression, data)
  local ok, r = pcall(jmespath.search, expression, data)
  if ok then return { ok = true, result = r } end
  if type(r) == "table" and r.code == "JMESPathError" then return { ok = false, error = r.kind } end
  error(r, 0)
end

-- Equal as JSON values, arrays in order (numbers compare as numbers).
local function same(a, b)
  return jmespath.equals(a, b)
end

local function show(v)
  if v == nil then return "null" end
  local ok, s = pcall(jmespath.py_dumps, v)
  return ok and s or tostring(v)
end

describe("jmespath compliance suite", function()
  local files = { "basic", "boolean", "filters", "indices", "multiselect", "pipe", "slice", "wildcard" }
  local cases = {}
  for _, name in ipairs(files) do
    local text = assert(proc.read_file("spec/fixtures/jmespath/" .. name .. ".json"))
    local suite = assert(jmespath.json_decode(text))
    for gi, group in ipairs(suite) do
      local given_text = jmespath.py_dumps(group.given)
      for ci, c in ipairs(group.cases) do
        cases[#cases + 1] = { file = name, group = gi, index = ci, expression = c.expression,
          given = given_text, result = c.result, error = c.error ~= NULL and c.error or nil }
      end
    end
  end
  local answers

  setup(function()
    answers = oracle(cases)
  end)

  it("has the cases of every file", function()
    assert.is_true(#cases > 200)
  end)

  for i, c in ipairs(cases) do
    it(("%s #%d.%d: %s"):format(c.file, c.group, c.index, c.expression), function()
      local data, derr = jmespath.json_decode(c.given)
      assert(derr == nil, derr)
      local got = ours(c.expression, data)
      local py = answers[i]
      if c.error then
        if py.ok or py.error ~= c.error then
          pending(("suite expects error %s, jmespath.py 1.0.1 gives %s"):format(c.error,
            py.ok and show(py.result) or py.error))
          return
        end
        assert.is_false(got.ok, "expected an error, got " .. show(got.result))
        assert.are.equal(c.error, got.error)
      else
        if not py.ok or not same(py.result, c.result) then
          pending(("suite expects %s, jmespath.py 1.0.1 gives %s"):format(show(c.result),
            py.ok and show(py.result) or py.error))
          return
        end
        assert.is_true(got.ok, "unexpected error " .. tostring(got.error))
        assert.is_true(same(c.result, got.result), ("want %s, got %s"):format(show(c.result), show(got.result)))
      end
    end)
  end
end)

describe("jmespath features botocore's models use", function()
  -- hand-computed from the JMESPath specification
  local data = jmespath.json_decode([[{
    "services": [
      {"deployments": [1], "runningCount": 2, "desiredCount": 2, "status": "ACTIVE"},
      {"deployments": [1, 2], "runningCount": 1, "desiredCount": 2, "status": "DRAINING"}],
    "Contents": [{"Key": "a"}, {"Key": "b"}, {"Key": "c"}],
    "failures": [{"reason": "MISSING"}],
    "empty": [], "zero": 0, "text": "h\u00e9llo", "obj": {}
  }]])

  local CASES = {
    { "Contents[-1].Key", "c" },
    { "NextMarker || Contents[-1].Key", "c" },
    { "length(Contents)", 3 },
    { "length(text)", 5 },
    { "length(obj)", 0 },
    { "length(services[?!(length(deployments) == `1` && runningCount == desiredCount)]) == `0`", false },
    { "length(services[?!(length(deployments) == `1` && runningCount == desiredCount)])", 1 },
    { "services[].status", { "ACTIVE", "DRAINING" } },
    { "contains(services[].status, 'DRAINING')", true },
    { "contains(text, 'll')", true },
    { "contains(Contents[].Key, 'z')", false },
    { "failures[].reason", { "MISSING" } },
    { "Contents[1:].Key", { "b", "c" } },
    { "Contents[::-2].Key", { "c", "a" } },
    { "services[?runningCount < desiredCount].status | [0]", "DRAINING" },
    { "services[?runningCount >= `2`].status", { "ACTIVE" } },
    { "!empty", true },
    { "!zero", false },
    { "empty || 'fallback'", "fallback" },
    { "zero && 'then'", "then" },
    { "missing", nil },
    { "missing.deeper[0]", nil },
  }

  for _, c in ipairs(CASES) do
    it(c[1], function()
      local got = jmespath.search(c[1], data)
      assert.is_true(same(c[2], got), ("want %s, got %s"):format(show(c[2]), show(got)))
    end)
  end

  it("treats JSON null and missing alike and keeps null inside results", function()
    local d = { a = NULL, list = setmetatable({ 1, NULL, 3 }, jmespath.array_mt) }
    assert.is_nil(jmespath.search("a", d))
    assert.is_nil(jmespath.search("b", d))
    assert.is_true(jmespath.search("a == b", d))
    assert.are.same({ 1, 3 }, jmespath.search("list[*]", d))
    local r = jmespath.search("[a, `1`]", d)
    assert.are.equal(NULL, r[1])
    assert.are.equal(1, r[2])
    assert.are.equal(3, jmespath.search("length(list)", d))
  end)

  it("reads parsed responses: plain Lua tables, an empty table is an empty list", function()
    local page = { Contents = {}, IsTruncated = false, KeyCount = 0 }
    assert.are.equal(0, jmespath.search("length(Contents)", page))
    assert.are.same({}, jmespath.search("Contents[].Key", page))
    assert.is_false(jmespath.search("IsTruncated", page))
  end)

  it("caches compiled expressions", function()
    assert.are.equal(jmespath.compile("a.b[0]"), jmespath.compile("a.b[0]"))
  end)

  it("raises on misuse with the compliance suite's error kinds", function()
    local function kind(expr, d)
      local ok, e = pcall(jmespath.search, expr, d or {})
      assert.is_false(ok)
      assert.are.equal("JMESPathError", e.code)
      return e.kind
    end
    assert.are.equal("syntax", kind("a.["))
    assert.are.equal("syntax", kind(""))
    assert.are.equal("syntax", kind("a ="))
    assert.are.equal("syntax", kind('`"bad`')) -- neither JSON nor the deprecated bare string
    assert.are.equal("{bad", jmespath.search("`{bad`", {})) -- jmespath.py's deprecated form
    assert.are.equal("syntax", kind("'unclosed"))
    assert.are.equal("invalid-type", kind("length(`1`)"))
    assert.are.equal("invalid-arity", kind("length(a, b)"))
    assert.are.equal("unknown-function", kind("nope(a)"))
    assert.are.equal("invalid-value", kind("a[::0]", { a = { 1 } }))
    assert.has_error(function() jmespath.search(5, {}) end)
    assert.has_error(function() jmespath.compile({}) end)
    assert.matches("a%.%[", tostring(select(2, pcall(jmespath.compile, "a.["))))
  end)

  it("writes JSON as Python's json.dumps does", function()
    local v = jmespath.object({ { "b", 1 }, { "a", { 1.5, "\xc3\xa9\n", true, NULL } }, { "c", 1e16 }, { "d", 0.0001 } })
    assert.are.equal('{"b": 1, "a": [1.5, "\\u00e9\\n", true, null], "c": 1e+16, "d": 0.0001}', jmespath.py_dumps(v))
    assert.are.equal('{"b":1,"a":[1.5,"\\u00e9\\n",true,null],"c":1e+16,"d":0.0001}', jmespath.py_dumps(v, true))
    assert.are.equal("100.0", jmespath.py_dumps(100.0))
    assert.are.equal('"\\ud83d\\ude00"', jmespath.py_dumps("\xf0\x9f\x98\x80"))
  end)
end)

-- A sample value for a shape: every member present, lists of two.
local function sample(shape, depth, seen)
  depth = depth or 0
  seen = seen or {}
  local t = shape.type
  if t == "structure" then
    if seen[shape.target] or depth > 8 then return NULL end
    seen[shape.target] = true
    local list = {}
    for _, m in ipairs(shape.member_names) do
      list[#list + 1] = { m, sample(shape.members[m], depth + 1, seen) }
    end
    seen[shape.target] = nil
    return jmespath.object(list)
  elseif t == "list" then
    local a = sample(shape.member, depth + 1, seen)
    local b = sample(shape.member, depth + 1, seen)
    return setmetatable({ a, b }, jmespath.array_mt)
  elseif t == "map" then
    return jmespath.object({ { "k1", sample(shape.value, depth + 1, seen) } })
  elseif t == "string" then
    return shape.enum and shape.enum[1] or ("s-" .. tostring(shape.name))
  elseif t == "boolean" then
    return true
  elseif t == "integer" or t == "long" then
    return 2
  elseif t == "float" or t == "double" then
    return 2.5
  elseif t == "timestamp" then
    return 1700000000
  elseif t == "blob" then
    return "blob"
  end
  return NULL
end

describe("jmespath on every bundled model's paginators and waiters", function()
  local cases = {}
  for service in pairs(model.bundled()) do
    local svc = assert(model.load(service))
    for op_name, cfg in pairs(svc.paginators or {}) do
      local op = svc:operation(op_name)
      local given = jmespath.py_dumps(op.output and sample(op.output) or jmespath.object({}))
      for _, key in ipairs({ "output_token", "result_key", "more_results", "non_aggregate_keys" }) do
        local v = cfg[key]
        if type(v) == "string" then v = { v } end
        for _, e in ipairs(v or {}) do
          cases[#cases + 1] = { what = ("%s %s paginator %s"):format(service, op_name, key), expression = e,
            given = given, must_find = key ~= "non_aggregate_keys" }
        end
      end
    end
    for _, wname in ipairs(svc:waiter_names()) do
      local w = svc:waiter(wname)
      local op = svc:operation(w.operation)
      local given = jmespath.py_dumps(op.output and sample(op.output) or jmespath.object({}))
      for _, a in ipairs(w.acceptors) do
        if a.argument then
          cases[#cases + 1] = { what = ("%s %s waiter %s"):format(service, wname, a.matcher), expression = a.argument,
            given = given, must_find = true }
        end
      end
    end
  end
  table.sort(cases, function(a, b) return a.what .. a.expression < b.what .. b.expression end)
  local answers
  setup(function() answers = oracle(cases) end)

  it("finds the expressions", function()
    assert.is_true(#cases > 300, "only " .. #cases .. " expressions")
  end)

  for i, c in ipairs(cases) do
    it(c.what .. ": " .. c.expression, function()
      local compiled = jmespath.compile(c.expression)
      local data = assert(jmespath.json_decode(c.given))
      local got = compiled:search(data)
      local py = answers[i]
      assert.is_true(py.ok, "python3-jmespath failed: " .. tostring(py.error))
      assert.is_true(same(py.result, got), ("python %s, ours %s"):format(show(py.result), show(got)))
      if c.must_find then
        -- the sample has every member: the expression names real fields
        assert.is_not_nil(got, "nothing found on a sample of the output shape")
      end
    end)
  end
end)

describe("jmespath against python3-jmespath on generated expressions", function()
  -- deterministic generator (xorshift), so a failure is reproducible
  local state = 0x2545F491
  local function rand(n)
    state = state ~ (state << 13) & 0xFFFFFFFF
    state = state ~ (state >> 17)
    state = state ~ (state << 5) & 0xFFFFFFFF
    return (state % n) + 1
  end
  local function pick(t) return t[rand(#t)] end

  local KEYS = { "a", "b", "c", "d" }
  -- no 0/1 in data or literals: Python's 1 == True would differ from JSON
  local SCALARS = { 2, 3, -4, 2.5, "x", "y", "ab", "b\xc3\xa9", "", true, false, NULL }
  local function gen_data(depth)
    local r = rand(depth > 2 and 2 or 5)
    if r <= 2 then return pick(SCALARS) end
    if r == 3 or r == 5 then
      local arr = setmetatable({}, jmespath.array_mt)
      for i = 1, rand(4) - 1 do arr[i] = gen_data(depth + 1) end
      return arr
    end
    local list = {}
    for _, k in ipairs(KEYS) do
      if rand(3) > 1 then list[#list + 1] = { k, gen_data(depth + 1) } end
    end
    return jmespath.object(list)
  end

  local LITERALS = { "`2`", "`3`", "`-4`", "`2.5`", "'x'", "'ab'", "`\"y\"`", "`true`", "`false`", "`null`",
    "`[2, 3]`", "`{\"a\": 2}`", "`[]`", "'b\xc3\xa9'" }
  local FUNCS = {
    { "length", 1 }, { "contains", 2 }, { "keys", 1 }, { "values", 1 }, { "sort", 1 }, { "max", 1 },
    { "min", 1 }, { "sum", 1 }, { "avg", 1 }, { "abs", 1 }, { "ceil", 1 }, { "floor", 1 }, { "not_null", 2 },
    { "to_array", 1 }, { "to_string", 1 }, { "to_number", 1 }, { "type", 1 }, { "reverse", 1 },
    { "starts_with", 2 }, { "ends_with", 2 }, { "join", 2 }, { "merge", 2 },
  }
  local BY = { "sort_by", "max_by", "min_by", "map" }
  local gen_expr
  local function gen_simple(depth)
    local r = rand(8)
    if r <= 3 then return pick(KEYS) end
    if r == 4 then return pick(LITERALS) end
    if r == 5 then return "@" end
    if r == 6 then return '"' .. pick(KEYS) .. '"' end
    if r == 7 then
      local f = pick(FUNCS)
      local args = {}
      for i = 1, f[2] do args[i] = gen_expr(depth + 1) end
      return f[1] .. "(" .. table.concat(args, ", ") .. ")"
    end
    local f = pick(BY)
    if f == "map" then return "map(&" .. gen_expr(depth + 1) .. ", " .. gen_expr(depth + 1) .. ")" end
    return f .. "(" .. gen_expr(depth + 1) .. ", &" .. pick(KEYS) .. ")"
  end
  function gen_expr(depth)
    if depth > 3 then return gen_simple(depth) end
    local r = rand(16)
    local e = gen_simple(depth)
    if r == 1 then return e .. "." .. pick(KEYS) end
    if r == 2 then return e .. "[" .. (rand(5) - 3) .. "]" end
    if r == 3 then
      local parts = { "", "", "" }
      for i = 1, 3 do if rand(2) == 1 then parts[i] = tostring(rand(7) - 4) end end
      if parts[3] == "0" then parts[3] = "" end
      return e .. "[" .. parts[1] .. ":" .. parts[2] .. (rand(2) == 1 and (":" .. parts[3]) or "") .. "]"
    end
    if r == 4 then return e .. "[*]." .. pick(KEYS) end
    if r == 5 then return e .. ".*" end
    if r == 6 then return e .. "[]" end
    if r == 7 then
      local op = pick({ "==", "!=", "<", "<=", ">", ">=" })
      return e .. "[?" .. pick(KEYS) .. " " .. op .. " " .. gen_simple(depth + 1) .. "]"
    end
    if r == 8 then return e .. " || " .. gen_expr(depth + 1) end
    if r == 9 then return e .. " && " .. gen_expr(depth + 1) end
    if r == 10 then return "!" .. e end
    if r == 11 then return "[" .. e .. ", " .. gen_expr(depth + 1) .. "]" end
    if r == 12 then return "{x: " .. e .. ", y: " .. gen_expr(depth + 1) .. "}" end
    if r == 13 then return e .. " | " .. gen_expr(depth + 1) end
    if r == 14 then return "(" .. e .. ")" end
    if r == 15 then
      local op = pick({ "==", "!=", "<", "<=", ">", ">=" })
      return e .. " " .. op .. " " .. gen_simple(depth + 1)
    end
    return e .. "." .. gen_simple(depth + 1)
  end

  local N = 3000
  local cases = {}
  for i = 1, N do
    local data = gen_data(0)
    cases[i] = { expression = gen_expr(0), given = jmespath.py_dumps(data) }
  end

  it("agrees on " .. N .. " random expressions and documents", function()
    local answers = oracle(cases)
    local compared, python_only, failures = 0, 0, {}
    local non_null, errors_seen = 0, 0
    for i, c in ipairs(cases) do
      local py = answers[i]
      if not py.ok and py.error == "python" then
        -- a Python TypeError (e.g. 5 in "abc", "a" < 2): not JMESPath
        python_only = python_only + 1
      else
        compared = compared + 1
        local data, derr = jmespath.json_decode(c.given)
        assert(derr == nil, derr)
        local got = ours(c.expression, data)
        local agree
        if py.ok then agree = got.ok and same(py.result, got.result)
        else agree = not got.ok and got.error == py.error end
        if py.ok and py.result ~= nil then non_null = non_null + 1 end
        if not py.ok then errors_seen = errors_seen + 1 end
        if not agree and #failures < 10 then
          failures[#failures + 1] = ("%s on %s: python %s, ours %s"):format(c.expression, c.given,
            py.ok and show(py.result) or py.error, got.ok and show(got.result) or got.error)
        end
      end
    end
    assert.are.same({}, failures)
    -- the generator must reach real results and real errors, not only null
    assert.is_true(non_null > N * 0.3 and errors_seen > N * 0.03)
    assert.is_true(compared > N * 0.95, ("only %d of %d compared (%d python-only errors)"):format(compared, N, python_only))
  end)
end)
