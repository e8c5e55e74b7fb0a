--- Parameter validation against a service model, as botocore's
-- `ParamValidator` (botocore/validate.py) does it.
--
--     local validate = require "aio_aws.validate"
--     local ok, err = validate.params(svc, "SubmitJob", params)
--     -- ok == true, or nil and err with
--     --   err.code    = "ParamValidation"
--     --   err.errors  = { {path = 'containerOverrides.environment[2].name',
--     --                    kind = "invalid type", message = "..."}, ... }
--     --   err.message = "Parameter validation failed:\n" .. one line per error
--
-- Every error is collected, not just the first. `kind` is botocore's reason
-- string: "missing required field", "unknown field", "invalid type",
-- "invalid range", "invalid length", "unable to encode to json",
-- "invalid type for document", "more than one input", "empty input".
--
-- Paths: members are joined with ".", list items are `[i]` with Lua's
-- 1-based index (botocore prints 0-based), map values are `["key"]` (the key
-- quoted, `"` `\` and control characters escaped). A missing or unknown
-- member's path is the member's own (`jobName`, `containerOverrides.foo`);
-- the message names the enclosing structure as botocore does ("input" for
-- the top level). An invalid map *key* has the path of its entry and
-- `key = true`. The top level itself has the path "".
--
-- What is checked, and where this differs from botocore on purpose:
--
--  * structure: a table that is not a non-empty sequence; required members
--    present (nil and JSON null count as absent); no unknown keys; tagged
--    unions (`union` trait) have exactly one member set.
--  * string: a Lua string holding valid UTF-8 (Python's `str` is text, so
--    bytes are "invalid type" there too); `min` counts characters (code
--    points, as Python's len), not bytes. A member with the `hostLabel`
--    trait has an implicit min of 1 (botocore's range_check).
--  * integer, long: a Lua integer, or a float with an integral value
--    (1.0): lua-cjson decodes every JSON number as a float and arithmetic
--    such as `n / 2` makes floats, and the serializers write such floats as
--    integers. botocore rejects Python floats here; it also accepts `True`
--    (a Python bool is an int), which this module rejects.
--  * float, double: any Lua number, plus the strings "NaN", "Infinity",
--    "-Infinity" that Smithy allows and the serializers accept
--    (https://smithy.io/2.0/spec/simple-types.html#float).
--  * boolean: a Lua boolean.
--  * blob: a string, or a value with a `read` method (a file handle),
--    as botocore accepts bytes, str or a file-like object.
--  * timestamp: a number (epoch seconds) or a string that
--    aio_aws.protocol.timestamp parses (ISO 8601, HTTP date, epoch digits):
--    what the serializers accept. botocore's dateutil parsing is looser.
--  * list: a sequence table (keys 1..n only; an empty table is an empty
--    list); `min` items.
--  * map: a table that is not a non-empty sequence; each key and value
--    validated against the key and value shapes. botocore checks no size.
--  * document (`document` trait): strings, finite numbers, booleans, JSON
--    null, and tables (arrays or string-keyed objects) of those, nested at
--    most 100 deep, as aio_aws.protocol.json writes them.
--  * `jsonvalue` header strings: any value the JSON writer can encode.
--
-- Bounds: botocore checks only `min` (string length, list length, number
-- value) and never `max`, because a service can raise a limit before the
-- client's model says so; `enum` and `pattern` are not checked either.
-- This module does the same by default. `opts.strict = true` also checks
-- `max` for strings, lists and numbers, and `min`/`max` entry counts of maps.
--
-- Values of shapes with the `sensitive` trait are never printed in messages.
--
-- Speed: the model's shapes are compiled once into plain tables (cached per
-- shape reference), validation is one recursive function with a shared path
-- stack, and paths and messages are only built when an error is found.
--
-- Misuse raises: `svc` not a service model, an unknown operation, `opts`
-- not a table.
local errors = require "aio_aws.errors"
local timestamp = require "aio_aws.protocol.timestamp"

local M = {}

local type, pairs, tostring, mtype = type, pairs, tostring, math.type
local utf8len, format, concat, sort = utf8.len, string.format, table.concat, table.sort
local huge, tointeger = math.huge, math.tointeger

-- Keys and values with special meaning in parameter tables: the key-order
-- bookkeeping of aio_aws.model.json, its array metatable, and JSON null.
local JSON = require "aio_aws.model.json"
local ORDER, ARRAY_MT = JSON.ORDER, JSON.array_mt
local ok_cjson, cjson = pcall(require, "cjson")
local NULL = ok_cjson and cjson.null or nil

-- Node kinds.
local STRUCT, STRING, LIST, MAP, INTEGER, FLOAT, BOOLEAN, BLOB, TIMESTAMP, DOCUMENT, JSONVALUE =
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11

local KIND_OF = {
  structure = STRUCT, string = STRING, list = LIST, map = MAP,
  integer = INTEGER, long = INTEGER, float = FLOAT, double = FLOAT,
  boolean = BOOLEAN, blob = BLOB, timestamp = TIMESTAMP,
}

local VALID_TYPES = {
  [STRUCT] = "table (structure)", [STRING] = "string", [LIST] = "table (list)",
  [MAP] = "table (map)", [INTEGER] = "integer", [FLOAT] = "number",
  [BOOLEAN] = "boolean", [BLOB] = "string, file-like object, {file = path}",
  [TIMESTAMP] = "number (epoch seconds), timestamp string",
}

local SPECIAL_FLOAT = { NaN = true, Infinity = true, ["-Infinity"] = true }

-- ------------------------------------------------------------- compiling

-- ref -> node. A reference with member traits is its own table (see
-- aio_aws.model), so traits such as hostLabel or jsonvalue stay apart.
local compiled = setmetatable({}, { __mode = "k" })

local compile -- forward

-- `min`/`max` come from the target shape: botocore reads them from the
-- shape's metadata, never from the member reference.
local function bounds(node, ref)
  local shape = ref.target or ref
  node.min, node.max = shape.min, shape.max
end

function compile(ref)
  local node = compiled[ref]
  if node then return node end
  local t = ref.type
  node = { sensitive = ref.sensitive == true }
  compiled[ref] = node -- before the children: shapes may be recursive
  if t == "structure" and ref.document then
    node.k = DOCUMENT
  elseif t == "string" and ref.jsonvalue and ref.location == "header" then
    -- botocore.utils.is_json_value_header
    node.k = JSONVALUE
  else
    node.k = KIND_OF[t]
    if not node.k then
      error(format("validate: shape %s has unknown type %q", tostring(ref.name), tostring(t)), 0)
    end
  end
  local k = node.k
  if k == STRUCT then
    local members, names, required = {}, {}, {}
    for i, name in ipairs(ref.member_names or {}) do
      names[i] = name
      members[name] = compile(ref.members[name])
    end
    -- required in model order of the `required` list, as botocore reports them
    for i, name in ipairs(ref.target.required or {}) do required[i] = name end
    node.members, node.names, node.required = members, names, required
    node.union = ref.union == true
  elseif k == LIST then
    bounds(node, ref)
    node.member = compile(ref.member)
  elseif k == MAP then
    bounds(node, ref)
    node.key = compile(ref.key)
    node.value = compile(ref.value)
  elseif k == STRING or k == INTEGER or k == FLOAT then
    bounds(node, ref)
    -- Host labels have an implicit min of 1 (botocore range_check).
    if k == STRING and node.min == nil and ref.hostLabel then node.min = 1 end
  end
  return node
end

-- ------------------------------------------------------------- state of one run

-- Validation never yields, so one shared state serves every call: the path
-- stack (segment value and how it is written) and the collected errors.
local SEG, HOW = {}, {} -- HOW: 1 member ".name", 2 list index "[i]", 3 map key '["k"]'
local errs, nerrs, strict

local function quote_key(k)
  if type(k) ~= "string" then return tostring(k) end
  return '"' .. k:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\"
    elseif c == "\n" then return "\\n" elseif c == "\t" then return "\\t"
    elseif c == "\r" then return "\\r" end
    return format("\\x%02x", c:byte())
  end) .. '"'
end

local function path_of(d)
  local parts = {}
  for i = 1, d do
    local how, seg = HOW[i], SEG[i]
    if how == 1 then
      if type(seg) == "string" then
        parts[#parts + 1] = (i == 1 and "" or ".") .. seg
      else
        parts[#parts + 1] = "[" .. quote_key(seg) .. "]"
      end
    elseif how == 2 then
      parts[#parts + 1] = "[" .. seg .. "]"
    else
      parts[#parts + 1] = "[" .. quote_key(seg) .. "]"
    end
  end
  return concat(parts)
end

local function name_of(d)
  if d == 0 then return "input" end
  return path_of(d)
end

local function show(node, v)
  if node and node.sensitive then return "***" end
  local tv = type(v)
  if tv == "table" then return "table" end
  if v == NULL and NULL ~= nil then return "null" end
  local s = tostring(v)
  if #s > 64 then s = s:sub(1, 61) .. "..." end
  return s
end

local function typename(v)
  if v == NULL and NULL ~= nil then return "null" end
  local tv = type(v)
  if tv == "number" then return mtype(v) end
  return tv
end

-- d: depth of the value's own path; msg is formatted by the caller.
local function report(d, kind, message, key)
  if not errs then errs, nerrs = {}, 0 end
  nerrs = nerrs + 1
  errs[nerrs] = { path = path_of(d), kind = kind, message = message, key = key }
end

local function bad_type(node, v, d, key)
  report(d, "invalid type", format("Invalid type for %sparameter %s, value: %s, type: %s, valid types: %s",
    key and "key of " or "", name_of(d), show(node, v), typename(v), VALID_TYPES[node.k]), key)
end

-- which: "min" or "max"; n: the length (kind "invalid length") or the value.
local function out_of_bounds(node, n, d, kind, key, which)
  if kind == "invalid length" then
    report(d, kind, format("Invalid length for %sparameter %s, value: %d, valid %s length: %s",
      key and "key of " or "", name_of(d), n, which, tostring(node[which])), key)
  else
    report(d, kind, format("Invalid value for parameter %s, value: %s, valid %s value: %s",
      name_of(d), show(node, n), which, tostring(node[which])), key)
  end
end

-- Length/value bounds: min always (botocore), max only when strict.
local function range(node, n, d, kind, key)
  local min = node.min
  if min and n < min then out_of_bounds(node, n, d, kind, key, "min") end
  if strict then
    local max = node.max
    if max and n > max then out_of_bounds(node, n, d, kind, key, "max") end
  end
end

-- True for a table that is a non-empty sequence (a list where a structure
-- or map is expected), or carries the JSON array metatable.
local function is_sequence(v)
  return v[1] ~= nil or getmetatable(v) == ARRAY_MT
end

local function absent(v)
  return v == nil or v == NULL
end

-- Documents: strings, finite numbers, booleans, null, arrays and objects.
local function check_document(v, d, depth)
  local tv = type(v)
  if tv == "string" or tv == "boolean" or (v == NULL and NULL ~= nil) then return end
  if tv == "number" then
    if v ~= v or v == huge or v == -huge then
      report(d, "invalid type for document", format(
        "Invalid type for document parameter %s, value: %s, type: number, valid types: finite number", name_of(d), tostring(v)))
    end
    return
  end
  if tv ~= "table" or depth > 100 then
    report(d, "invalid type for document", format(
      "Invalid type for document parameter %s, value: %s, type: %s, valid types: string, number, boolean, null, table%s",
      name_of(d), show(nil, v), tv, depth > 100 and " (nested at most 100 deep)" or ""))
    return
  end
  local len = #v
  if len > 0 or getmetatable(v) == ARRAY_MT then
    local array = true
    for k in pairs(v) do
      if k ~= ORDER and (mtype(k) ~= "integer" or k < 1 or k > len) then array = false break end
    end
    if array then
      for i = 1, len do
        SEG[d + 1], HOW[d + 1] = i, 2
        check_document(v[i], d + 1, depth + 1)
      end
      return
    end
  end
  for k, x in pairs(v) do
    if k ~= ORDER then
      SEG[d + 1], HOW[d + 1] = k, 3
      if type(k) ~= "string" then
        report(d + 1, "invalid type for document", format(
          "Invalid type for document parameter %s: key %s is not a string", name_of(d), show(nil, k)), true)
      else
        check_document(x, d + 1, depth + 1)
      end
    end
  end
end

-- Values json.dumps accepts in botocore: everything but functions,
-- userdata (other than JSON null), coroutines and non-string object keys.
local function json_problem(v, depth)
  local tv = type(v)
  if tv == "string" or tv == "number" or tv == "boolean" or (v == NULL and NULL ~= nil) then return nil end
  if tv ~= "table" then return tv .. " is not JSON serializable" end
  if depth > 100 then return "nested more than 100 deep" end
  local len = #v
  for k, x in pairs(v) do
    if k ~= ORDER then
      if type(k) ~= "string" and not (mtype(k) == "integer" and k >= 1 and k <= len) then
        return "key " .. tostring(k) .. " is not a string"
      end
      local why = json_problem(x, depth + 1)
      if why then return why end
    end
  end
  return nil
end

-- `v.read` may raise (userdata without __index): called under pcall.
local function index_read(v) return v.read end

local check -- forward

local function check_struct(node, v, d)
  if type(v) ~= "table" or is_sequence(v) then return bad_type(node, v, d) end
  local members = node.members
  local required = node.required
  for i = 1, #required do
    local name = required[i]
    if absent(v[name]) then
      SEG[d + 1], HOW[d + 1] = name, 1
      report(d + 1, "missing required field",
        format('Missing required parameter in %s: "%s"', name_of(d), name))
    end
  end
  local unknown, given = nil, 0
  for key, x in pairs(v) do
    if members[key] == nil then
      if key ~= ORDER then
        unknown = unknown or {}
        unknown[#unknown + 1] = key
      end
    elseif x ~= NULL then
      given = given + 1
    end
  end
  if unknown then
    -- deterministic order: strings sorted, then other keys by their text
    sort(unknown, function(a, b)
      local ta, tb = type(a) == "string", type(b) == "string"
      if ta ~= tb then return ta end
      return tostring(a) < tostring(b)
    end)
    local valid = node.valid_text
    if not valid then
      valid = concat(node.names, ", ")
      node.valid_text = valid
    end
    for _, key in ipairs(unknown) do
      SEG[d + 1], HOW[d + 1] = key, 1
      report(d + 1, "unknown field",
        format('Unknown parameter in %s: "%s", must be one of: %s', name_of(d), tostring(key), valid))
      given = given + 1
    end
  end
  if node.union then
    -- botocore counts every key given, known or not
    if given == 0 then
      report(d, "empty input", format("Must set one of the following keys for tagged union structure %s: %s.",
        name_of(d), concat(node.names, ", ")))
    elseif given > 1 then
      report(d, "more than one input", format(
        "Invalid number of parameters set for tagged union structure %s. Can only set one of the following keys: %s.",
        name_of(d), concat(node.names, ", ")))
    end
  end
  local names = node.names
  for i = 1, #names do
    local name = names[i]
    local x = v[name]
    if x ~= nil and x ~= NULL then
      SEG[d + 1], HOW[d + 1] = name, 1
      check(members[name], x, d + 1)
    end
  end
end

local function check_list(node, v, d)
  if type(v) ~= "table" then return bad_type(node, v, d) end
  local n = #v
  local count = 0
  for key in pairs(v) do
    if mtype(key) ~= "integer" or key < 1 or key > n then
      return report(d, "invalid type", format(
        "Invalid type for parameter %s, value: table with key %s, type: table, valid types: %s (a sequence)",
        name_of(d), show(nil, key), VALID_TYPES[LIST]))
    end
    count = count + 1
  end
  if count ~= n then
    return report(d, "invalid type", format("Invalid type for parameter %s, value: table with holes, type: table, valid types: %s",
      name_of(d), VALID_TYPES[LIST]))
  end
  range(node, n, d, "invalid length")
  local member = node.member
  for i = 1, n do
    SEG[d + 1], HOW[d + 1] = i, 2
    check(member, v[i], d + 1)
  end
end

local function check_map(node, v, d)
  if type(v) ~= "table" or is_sequence(v) then return bad_type(node, v, d) end
  local kn, vn = node.key, node.value
  local count = 0
  for key, x in pairs(v) do
    if key ~= ORDER then
      count = count + 1
      SEG[d + 1], HOW[d + 1] = key, 3
      check(kn, key, d + 1, true)
      check(vn, x, d + 1)
    end
  end
  if strict then range(node, count, d, "invalid length") end
end

-- `key` is true when `v` is a map key (reported with key = true).
function check(node, v, d, key)
  local k = node.k
  if k == STRING then
    if type(v) ~= "string" then return bad_type(node, v, d, key) end
    local min, max = node.min, strict and node.max
    local n = utf8len(v)
    if not n then
      return report(d, "invalid type", format(
        "Invalid type for %sparameter %s, value: %s, type: string (not valid UTF-8), valid types: string",
        key and "key of " or "", name_of(d), node.sensitive and "***" or "(bytes)"), key)
    end
    if (min and n < min) or (max and n > max) then range(node, n, d, "invalid length", key) end
  elseif k == STRUCT then
    check_struct(node, v, d)
  elseif k == LIST then
    check_list(node, v, d)
  elseif k == MAP then
    check_map(node, v, d)
  elseif k == INTEGER then
    -- an integral float must also fit an integer, as the serializers write it
    if type(v) ~= "number" or (mtype(v) == "float" and not tointeger(v)) then
      return bad_type(node, v, d, key)
    end
    if node.min or strict then range(node, v, d, "invalid range", key) end
  elseif k == FLOAT then
    if type(v) ~= "number" then
      if type(v) == "string" and SPECIAL_FLOAT[v] then return end
      return bad_type(node, v, d, key)
    end
    if node.min or strict then range(node, v, d, "invalid range", key) end
  elseif k == BOOLEAN then
    if type(v) ~= "boolean" then return bad_type(node, v, d, key) end
  elseif k == BLOB then
    local tv = type(v)
    if tv ~= "string" then
      -- a file-like object: anything with a callable `read` (io handles too)
      local ok, read = false, nil
      if tv == "table" or tv == "userdata" then ok, read = pcall(index_read, v) end
      -- or the client's file body, {file = path}, streamed from disk
      local file_body = tv == "table" and type(rawget(v, "file")) == "string"
      if not (file_body or (ok and (type(read) == "function" or io.type(v) ~= nil))) then
        return bad_type(node, v, d, key)
      end
    end
  elseif k == TIMESTAMP then
    local tv = type(v)
    if (tv ~= "number" and tv ~= "string") or not timestamp.parse(v) then return bad_type(node, v, d, key) end
  elseif k == DOCUMENT then
    check_document(v, d, 1)
  elseif k == JSONVALUE then
    local why = json_problem(v, 1)
    if why then
      report(d, "unable to encode to json", format("Invalid parameter %s must be json serializable: %s", name_of(d), why))
    end
  end
end

-- ------------------------------------------------------------- API

local function run(ref, value, opts, op_name)
  local node = compiled[ref] or compile(ref)
  errs, nerrs, strict = nil, 0, opts ~= nil and opts.strict == true
  check(node, value, 0)
  local found, n = errs, nerrs
  errs, nerrs = nil, 0
  if not found then return true end
  local lines = { "Parameter validation failed:" }
  for i = 1, n do lines[i + 1] = found[i].message end
  return nil, errors.new("ParamValidation", concat(lines, "\n"), { errors = found, operation = op_name })
end

local function operation(svc, op_name)
  if type(svc) ~= "table" or type(svc.operation) ~= "function" then
    error("validate.params: a service model (aio_aws.model) is expected", 3)
  end
  if type(op_name) ~= "string" then error("validate.params: operation name must be a string", 3) end
  local op = svc:operation(op_name)
  if not op then error(format("%s has no operation %q", tostring(svc.name), op_name), 3) end
  return op
end

--- Validate an operation's parameters.
-- @tparam Service svc a loaded model (aio_aws.model)
-- @tparam string op_name "SubmitJob" or "submit_job"
-- @tparam[opt] table params the input members (nil: none)
-- @tparam[opt] table opts `strict = true` also checks `max` bounds and map sizes
-- @return true, or nil, err (code "ParamValidation", `errors`, `message`)
function M.params(svc, op_name, params, opts)
  local op = operation(svc, op_name)
  if opts ~= nil and type(opts) ~= "table" then error("validate.params: opts must be a table", 2) end
  local input = op.input
  -- botocore validates only operations that have an input shape.
  if not input then return true end
  if params == nil then params = {} end
  return run(input, params, opts, op.name)
end

--- Validate a value against one shape reference (a structure member, an
-- operation's input, ...). Same result as `params`; paths start at the value.
function M.shape(ref, value, opts)
  if type(ref) ~= "table" or type(ref.type) ~= "string" then
    error("validate.shape: a shape reference (aio_aws.model) is expected", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then error("validate.shape: opts must be a table", 2) end
  return run(ref, value, opts)
end

return M
