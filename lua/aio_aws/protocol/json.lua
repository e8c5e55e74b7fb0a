--- The `json` protocol (awsJson1_0 / awsJson1_1), plus the shape-directed
-- JSON writer and reader that rest-json shares.
--
-- Spec: https://smithy.io/2.0/aws/protocols/aws-json-1_0-protocol.html and
-- aws-json-1_1-protocol.html.
--  * every request is `POST /` with `X-Amz-Target: <targetPrefix>.<Operation>`
--    and `Content-Type: application/x-amz-json-<jsonVersion>`; the body is the
--    input structure as a JSON object, `{}` when there is no input;
--  * member keys are the member names (or `locationName`, botocore's jsonName);
--    null members are left out; blobs are base64; timestamps default to
--    epoch seconds; NaN/Infinity/-Infinity travel as strings;
--  * errors: the code comes from `x-amzn-query-error` (awsQueryCompatible
--    services), else `x-amzn-errortype`, else the body's `code`, else
--    `__type`; a namespace before '#' and anything after ':' are dropped.
local common = require "aio_aws.protocol.common"
local timestamp = require "aio_aws.protocol.timestamp"
local errors = require "aio_aws.errors"

local JSON = require "aio_aws.model.json"

local M = {}

local ORDER = JSON.ORDER
local absent, fail = common.absent, common.fail
local format, gsub, find = string.format, string.gsub, string.find
local concat, tointeger, mtype, huge = table.concat, math.tointeger, math.type, math.huge

-- ------------------------------------------------------------------ writer

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ["\127"] = "\\u007f" }
for i = 0, 31 do
  local ch = string.char(i)
  if not ESCAPES[ch] then ESCAPES[ch] = format("\\u%04x", i) end
end

local function quote(s)
  if not find(s, '[%c"\\]') then return '"' .. s .. '"' end
  return '"' .. gsub(s, '[%c"\\]', ESCAPES) .. '"'
end
M.quote = quote

local function num(v)
  if mtype(v) == "integer" then return format("%d", v) end
  if v ~= v then return '"NaN"' end
  if v == huge then return '"Infinity"' end
  if v == -huge then return '"-Infinity"' end
  return common.float_text(v)
end

-- Documents (https://smithy.io/2.0/spec/simple-types.html#document) are
-- written as given: tables with keys 1..n are arrays, other tables objects
-- (sorted keys), json.null or a table with aio_aws.model.json.array_mt as
-- JSON null / empty array.
local function write_document(buf, n, v, where, depth)
  local tv = type(v)
  if depth > 100 then fail("document parameter %s nests too deeply", where) end
  if tv == "string" then n = n + 1; buf[n] = quote(v)
  elseif tv == "number" then
    if v ~= v or v == huge or v == -huge then fail("document parameter %s holds a non-finite number", where) end
    n = n + 1; buf[n] = num(v)
  elseif tv == "boolean" then n = n + 1; buf[n] = v and "true" or "false"
  elseif v == common.null then n = n + 1; buf[n] = "null"
  elseif tv == "table" then
    local len = #v
    local is_array = len > 0 or getmetatable(v) == JSON.array_mt
    if is_array then
      for k in pairs(v) do
        if k ~= ORDER and (mtype(k) ~= "integer" or k < 1 or k > len) then is_array = false break end
      end
    end
    if is_array then
      n = n + 1; buf[n] = "["
      for i = 1, len do
        if i > 1 then n = n + 1; buf[n] = "," end
        n = write_document(buf, n, v[i], where, depth + 1)
      end
      n = n + 1; buf[n] = "]"
    else
      local keys = {}
      local order = v[ORDER]
      if order then
        for _, k in ipairs(order) do keys[#keys + 1] = k end
      else
        for k in pairs(v) do
          if type(k) ~= "string" then fail("document parameter %s has a non-string key", where) end
          keys[#keys + 1] = k
        end
        table.sort(keys)
      end
      n = n + 1; buf[n] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then n = n + 1; buf[n] = "," end
        n = n + 1; buf[n] = quote(k) .. ":"
        n = write_document(buf, n, v[k], where, depth + 1)
      end
      n = n + 1; buf[n] = "}"
    end
  else
    fail("Invalid type for document parameter %s: %s", where, tv)
  end
  return n
end
M.write_document = write_document

local write -- forward

local function write_struct(buf, n, ref, v, where, skip_located)
  local shape = ref.target
  common.check_table(v, where, "structure")
  common.check_members(shape, v, where)
  local members, names = shape.members, shape.member_names
  n = n + 1; buf[n] = "{"
  local first = true
  for i = 1, #names do
    local m = names[i]
    local mv = v[m]
    if not absent(mv) then
      local mref = members[m]
      if not (skip_located and mref.location) then
        if first then first = false else n = n + 1; buf[n] = "," end
        n = n + 1; buf[n] = quote(mref.locationName or m) .. ":"
        n = write(buf, n, mref, mv, where .. "." .. m)
      end
    end
  end
  n = n + 1; buf[n] = "}"
  return n
end

function write(buf, n, ref, v, where)
  local t = ref.type
  if t == "string" then
    n = n + 1; buf[n] = quote(common.check_string(v, where))
  elseif t == "structure" then
    if ref.document then return write_document(buf, n, v, where, 0) end
    return write_struct(buf, n, ref, v, where)
  elseif t == "list" then
    local count = common.check_list(v, where)
    local mref = ref.member
    n = n + 1; buf[n] = "["
    for i = 1, count do
      if i > 1 then n = n + 1; buf[n] = "," end
      local item = v[i]
      if absent(item) then n = n + 1; buf[n] = "null"
      else n = write(buf, n, mref, item, where .. "[" .. i .. "]") end
    end
    n = n + 1; buf[n] = "]"
  elseif t == "map" then
    local keys, count = common.map_keys(v, where)
    local vref = ref.value
    n = n + 1; buf[n] = "{"
    for i = 1, count do
      local k = keys[i]
      if i > 1 then n = n + 1; buf[n] = "," end
      n = n + 1; buf[n] = quote(k) .. ":"
      local item = v[k]
      if absent(item) then n = n + 1; buf[n] = "null"
      else n = write(buf, n, vref, item, where .. "." .. k) end
    end
    n = n + 1; buf[n] = "}"
  elseif t == "boolean" then
    n = n + 1; buf[n] = common.check_boolean(v, where) and "true" or "false"
  elseif t == "timestamp" then
    local secs, err = timestamp.parse(v)
    if not secs then fail("Invalid timestamp for parameter %s: %s", where, err) end
    local out = timestamp.format(secs, ref.timestampFormat or "unixTimestamp")
    n = n + 1; buf[n] = type(out) == "string" and quote(out) or num(out)
  elseif t == "blob" then
    if type(v) ~= "string" then fail("Invalid type for parameter %s: blob (string) expected, got %s", where, type(v)) end
    n = n + 1; buf[n] = quote(common.b64encode(v))
  elseif t == "float" or t == "double" then
    if type(v) == "string" and common.SPECIAL_FLOAT[v] then
      n = n + 1; buf[n] = '"' .. v .. '"'
    else
      if type(v) ~= "number" then fail("Invalid type for parameter %s, value: %s, type: %s, valid types: number", where, tostring(v), type(v)) end
      n = n + 1; buf[n] = num(v)
    end
  elseif t == "structure" and ref.document then
    return write_document(buf, n, v, where, 0)
  else -- integer, long, byte, short
    n = n + 1; buf[n] = common.number_text(ref, v, where)
  end
  return n
end

--- JSON text for `v` as `ref` describes it.
-- @tparam table ref shape reference
-- @param v the parameter value
-- @tparam string where parameter path for messages
-- @tparam[opt] boolean skip_located leave out members bound to the URI,
-- query string or headers (rest-json bodies)
function M.encode(ref, v, where, skip_located)
  local buf = {}
  local n
  if ref.type == "structure" and not ref.document then
    n = write_struct(buf, 0, ref, v, where, skip_located)
  else
    n = write(buf, 0, ref, v, where)
  end
  return concat(buf, "", 1, n)
end

-- ------------------------------------------------------------------ reader

local PARSE = setmetatable({}, { __name = "json.PARSE" })
M.PARSE = PARSE
local function perr(fmtstr, ...)
  error(setmetatable({ message = format(fmtstr, ...) }, PARSE), 0)
end

local null = common.null
local SPECIAL = common.SPECIAL_FLOAT

local read -- forward

local function read_struct(ref, v)
  if type(v) ~= "table" then perr("expected a JSON object for %s, got %s", ref.target.name, type(v)) end
  local shape = ref.target
  local out = {}
  local members, names = shape.members, shape.member_names
  local keys = shape._json_keys
  if not keys then
    keys = {}
    for i, m in ipairs(names) do
      local mref = members[m]
      local loc = mref.location
      keys[i] = (loc ~= "header" and loc ~= "headers" and loc ~= "statusCode") and (mref.locationName or m) or false
    end
    rawset(shape, "_json_keys", keys)
  end
  for i = 1, #names do
    local key = keys[i]
    if key then
      local raw = v[key]
      if raw ~= nil and raw ~= null then
        local m = names[i]
        out[m] = read(members[m], raw)
      end
    end
  end
  if shape.union then
    local any = next(out)
    if not any then
      for k, raw in pairs(v) do
        -- "__type" is informational in union objects (Smithy awsJson1_x)
        if k ~= "__type" and raw ~= null then return { SDK_UNKNOWN_MEMBER = { name = k } } end
      end
    end
  end
  return out
end

function read(ref, v)
  local t = ref.type
  if t == "string" then
    if type(v) ~= "string" then perr("expected a string for %s", ref.target.name) end
    return v
  elseif t == "structure" then
    if ref.document then return v end
    return read_struct(ref, v)
  elseif t == "list" then
    if type(v) ~= "table" then perr("expected a JSON array for %s", ref.target.name) end
    local mref, out, n = ref.member, {}, 0
    for i = 1, #v do
      local item = v[i]
      if item ~= null then
        n = n + 1
        out[n] = read(mref, item)
      end
    end
    return out
  elseif t == "map" then
    if type(v) ~= "table" then perr("expected a JSON object for %s", ref.target.name) end
    local vref, out = ref.value, {}
    for k, item in pairs(v) do
      if item ~= null then out[k] = read(vref, item) end
    end
    return out
  elseif t == "timestamp" then
    local secs, err = timestamp.parse(v)
    if not secs then perr("%s", err) end
    return secs
  elseif t == "blob" then
    if type(v) ~= "string" then perr("expected a base64 string for %s", ref.target.name) end
    local b, err = common.b64decode(v)
    if not b then perr("invalid base64 blob: %s", err) end
    return b
  elseif t == "boolean" then
    if type(v) ~= "boolean" then perr("expected a boolean for %s", ref.target.name) end
    return v
  elseif t == "float" or t == "double" then
    if type(v) == "string" then
      local s = SPECIAL[v]
      if s then return s end
      perr("expected a number for %s", ref.target.name)
    end
    return v
  else -- integer, long, ...
    if type(v) ~= "number" then perr("expected a number for %s", ref.target.name) end
    return tointeger(v) or v
  end
end

--- Read a decoded JSON value as `ref` describes it (raises PARSE).
M.read = read

local cjson_safe
local function cjson()
  if not cjson_safe then
    cjson_safe = require("cjson.safe").new()
    -- arrays must come back as tables; keep nesting limits at cjson's default
  end
  return cjson_safe
end

--- Decode a response body. Numbers with 16 or more digits would lose
-- precision through lua-cjson (doubles), so such bodies go through the
-- exact (slower) pure-Lua decoder.
-- @return value, or nil, message
function M.decode(body)
  if find(body, "%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d%d") then
    return require("aio_aws.model.json").decode(body)
  end
  local v, err = cjson().decode(body)
  if v == nil and err then return nil, err end
  return v
end

--- Run `fn(...)`, turning a JSON read failure into `nil, message`.
function M.guard(fn, ...)
  local ok, res = pcall(fn, ...)
  if ok then return res end
  if type(res) == "table" and getmetatable(res) == PARSE then return nil, res.message end
  error(res, 0)
end

-- ------------------------------------------------------------------ errors

--- Error code and message of a JSON error response (shared with rest-json).
-- @tparam table response {status, headers, body}
-- @param body the decoded body (a table), or nil
-- @treturn string code, string message
function M.error_code(response, body, svc)
  local headers = response.headers or {}
  local code
  local qe = headers["x-amzn-query-error"]
  if qe and svc and svc.metadata.awsQueryCompatible then
    code = qe:match("^([^;]+);")
  end
  if not code then code = headers["x-amzn-errortype"] end
  if not code and type(body) == "table" then
    local c = body.code or body.Code or body.__type
    if type(c) == "string" then code = c end
  end
  if code then
    code = code:match("^[^:]*") -- "Code:http://internal..." -> "Code"
    code = code:match("#([^#]*)$") or code -- "aws.namespace#Code" -> "Code"
    code = code:gsub("^%s+", ""):gsub("%s+$", "")
  end
  if not code or code == "" then code = tostring(response.status) end
  local msg
  if type(body) == "table" then
    msg = body.message or body.Message or body.errorMessage
    if type(msg) ~= "string" then msg = nil end
  end
  return code, msg
end

-- ------------------------------------------------------------------ protocol

--- Build a json-protocol request.
function M.build(svc, op, params, opts)
  local md = svc.metadata
  local target = (md.targetPrefix or "") .. "." .. op.name
  local headers = {
    ["x-amz-target"] = target,
    ["content-type"] = "application/x-amz-json-" .. (md.jsonVersion or "1.0"),
  }
  local body
  if op.input then
    body = M.encode(op.input, params, op.input.target.name)
  else
    if common.has_keys(params) then
      local k = next(params)
      fail("Unknown parameter in input: %q: %s takes no parameters", tostring(k), op.name)
    end
    body = "{}"
  end
  local req = { method = op.http.method or "POST", path = "/", query = {}, headers = headers, body = body }
  if md.awsQueryCompatible then
    -- Smithy awsQueryCompatible: tell the service to send x-amzn-query-error
    headers["x-amzn-query-mode"] = "true"
  end
  return req
end

local function request_id(headers)
  return headers["x-amzn-requestid"] or headers["x-amz-request-id"]
end
M.request_id = request_id

--- Build the error object for a JSON error response (rest-json adds its
-- header-bound members through `extra`).
function M.make_error(svc, response, extra)
  local headers = response.headers or {}
  local body_text = response.body
  local body
  if type(body_text) == "string" and body_text ~= "" then
    body = M.decode(body_text)
    if type(body) ~= "table" then body = { message = body_text } end
  end
  local code, msg = M.error_code(response, body, svc)
  local fields = { status = response.status, request_id = request_id(headers) }
  local data = common.modeled_error(svc, code, fields, function(shape)
    local out = type(body) == "table" and read(shape, body) or {}
    if extra then extra(shape, out) end
    return out
  end)
  if msg == nil and data then msg = data.message or data.Message end
  if msg == nil then msg = common.reason(response.status) end
  return errors.new(code, msg, fields)
end

-- The member of an output structure that targets an event stream, if any.
local function eventstream_member(shape)
  local m = shape._eventstream_member
  if m == nil then
    m = false
    for _, name in ipairs(shape.member_names or {}) do
      if shape.members[name].eventstream then m = name break end
    end
    rawset(shape, "_eventstream_member", m)
  end
  return m
end

--- Parse a json-protocol response.
function M.parse(svc, op, response)
  local status = response.status
  if status >= 300 then return nil, M.make_error(svc, response) end
  local out
  local body = response.body
  local es = op.output and eventstream_member(op.output.target)
  if es then
    -- the initial response and the events travel in the stream itself
    -- (application/vnd.amazon.eventstream): hand it over as given
    return { [es] = body }
  end
  if op.output then
    if type(body) == "string" and body ~= "" then
      local v, err = M.decode(body)
      if v == nil then
        return nil, errors.new("ResponseParserError", "Unable to parse response body as JSON: " .. tostring(err),
          { status = status, request_id = request_id(response.headers or {}) })
      end
      local res, perr2 = M.guard(read, op.output, v)
      if not res then
        return nil, errors.new("ResponseParserError", "Unable to parse response: " .. perr2,
          { status = status, request_id = request_id(response.headers or {}) })
      end
      out = res
    else
      out = {}
    end
  else
    out = {}
  end
  return out
end

return M
