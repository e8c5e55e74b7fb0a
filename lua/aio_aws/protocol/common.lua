--- Helpers shared by the protocol serializers and parsers: parameter
-- failures, scalar formatting, percent-encoding, base64, idempotency tokens.
local errors = require "aio_aws.errors"

local M = {}

local byte, char, format, gsub, sub = string.byte, string.char, string.format, string.gsub, string.sub
local concat, mtype, floor, huge = table.concat, math.type, math.floor, math.huge

local ORDER = require("aio_aws.model.json").ORDER

local ok_cjson, cjson = pcall(require, "cjson")
M.null = ok_cjson and cjson.null or nil

--- True when a parameter table has any key (the ORDER bookkeeping of
-- aio_aws.model.json does not count).
function M.has_keys(t)
  local k = next(t)
  if k == ORDER then k = next(t, k) end
  return k ~= nil
end

--- True for a value that means "not given": nil or JSON null.
function M.absent(v)
  return v == nil or v == M.null
end

-- Parameter failures travel as a tagged error object up to the protocol
-- entry point, which turns them into `nil, errors.new("ParamValidation")`.
local PARAM = {}
M.PARAM = PARAM

function M.fail(fmt, ...)
  error(setmetatable({ message = format(fmt, ...) }, PARAM), 0)
end

--- Runs `fn(...)`; a parameter failure becomes `nil, err`, anything else
-- (a bug) is raised again with its traceback.
function M.protect(code, fn, ...)
  local ok, a, b = xpcall(fn, function(e)
    if getmetatable(e) == PARAM then return e end
    return debug.traceback(tostring(e), 2)
  end, ...)
  if ok then return a, b end
  if getmetatable(a) == PARAM then return nil, errors.new(code, a.message) end
  error(a, 0)
end

-- ------------------------------------------------------------------ numbers

--- Shortest decimal text that reads back to the same double.
function M.float_text(v)
  if v ~= v then return "NaN" end
  if v == huge then return "Infinity" end
  if v == -huge then return "-Infinity" end
  if mtype(v) == "integer" then return format("%d", v) end
  local s = format("%.15g", v)
  if tonumber(s) ~= v then
    s = format("%.16g", v)
    if tonumber(s) ~= v then s = format("%.17g", v) end
  end
  return s
end

local SPECIAL_FLOAT = { NaN = 0 / 0, Infinity = huge, ["-Infinity"] = -huge }
M.SPECIAL_FLOAT = SPECIAL_FLOAT

--- Checks a parameter against a number type and returns it as text.
-- Smithy float/double accept the strings "NaN", "Infinity", "-Infinity"
-- (https://smithy.io/2.0/spec/simple-types.html#float).
function M.number_text(shape, v, where)
  local t = shape.type
  if type(v) == "number" then
    if t == "float" or t == "double" then return M.float_text(v) end
    if mtype(v) == "float" then
      if v ~= floor(v) or v ~= v then M.fail("Invalid type for parameter %s: %s is not an integer", where, tostring(v)) end
      return format("%d", v)
    end
    return format("%d", v)
  elseif type(v) == "string" and (t == "float" or t == "double") and SPECIAL_FLOAT[v] then
    return v
  end
  M.fail("Invalid type for parameter %s, value: %s, type: %s, valid types: number", where, tostring(v), type(v))
end

function M.check_string(v, where)
  if type(v) ~= "string" then
    M.fail("Invalid type for parameter %s, value: %s, type: %s, valid types: string", where, tostring(v), type(v))
  end
  return v
end

function M.check_boolean(v, where)
  if type(v) ~= "boolean" then
    M.fail("Invalid type for parameter %s, value: %s, type: %s, valid types: boolean", where, tostring(v), type(v))
  end
  return v
end

function M.check_table(v, where, what)
  if type(v) ~= "table" then
    M.fail("Invalid type for parameter %s, value: %s, type: %s, valid types: %s", where, tostring(v), type(v), what)
  end
  return v
end

--- Checks a list parameter (a sequence) and returns its length.
function M.check_list(v, where)
  if type(v) ~= "table" then
    M.fail("Invalid type for parameter %s, value: %s, type: %s, valid types: list", where, tostring(v), type(v))
  end
  local n = #v
  if n == 0 and next(v) ~= nil then
    M.fail("Invalid type for parameter %s: a list (sequence) is expected, got a map", where)
  end
  return n
end

--- Keys of a map parameter in wire order: sorted (deterministic), or the
-- order recorded under `aio_aws.model.json.ORDER` when the table carries
-- one (a map decoded with `json.decode(s, {order = true})`).
function M.map_keys(v, where)
  M.check_table(v, where, "map")
  local keys, n = {}, 0
  local order = v[ORDER]
  if order then
    for _, k in ipairs(order) do
      if v[k] ~= nil then n = n + 1; keys[n] = k end
    end
    return keys, n
  end
  for k in pairs(v) do
    if type(k) ~= "string" then M.fail("Invalid map key for parameter %s: %s (string expected)", where, tostring(k)) end
    n = n + 1; keys[n] = k
  end
  table.sort(keys)
  return keys, n
end

--- Rejects keys a structure does not model (the validator, a separate
-- stage, reports these in full; the serializer only fails cleanly).
function M.check_members(shape, v, where)
  local members = shape.members
  for k in pairs(v) do
    if members[k] == nil and k ~= ORDER then
      M.fail("Unknown parameter in %s: %q, must be one of: %s", where, tostring(k), concat(shape.member_names, ", "))
    end
  end
end

--- A constructor of presized output tables for a structure: growing a
-- table field by field rehashes it several times, and parsed pages hold
-- thousands of these (a generated `{a=nil, b=nil, ...}` constructor gets a
-- hash part of the right size). Cached on the shape.
function M.table_maker(shape)
  local mk = shape._new_table
  if mk then return mk end
  local names = shape.member_names or {}
  local n = math.min(#names, 16)
  if n == 0 then
    mk = function() return {} end
  else
    local fields = {}
    for i = 1, n do fields[i] = format("[%q]=nil", names[i]) end
    mk = assert(load("return function() return {" .. concat(fields, ",") .. "} end", "=table_maker", "t", {}))()
  end
  rawset(shape, "_new_table", mk)
  return mk
end

--- Text of a scalar parameter for a query string, URI label, header or
-- XML element: strings as given, booleans "true"/"false", timestamps in
-- the member's timestampFormat (else `default_ts`), blobs base64, numbers
-- per their type. Aggregates cannot be bound as text.
function M.scalar_text(ref, v, where, default_ts)
  local t = ref.type
  if t == "string" then
    return M.check_string(v, where)
  elseif t == "boolean" then
    return M.check_boolean(v, where) and "true" or "false"
  elseif t == "timestamp" then
    local timestamp = require "aio_aws.protocol.timestamp"
    local secs, err = timestamp.parse(v)
    if not secs then M.fail("Invalid timestamp for parameter %s: %s", where, err) end
    return tostring(timestamp.format(secs, ref.timestampFormat or default_ts))
  elseif t == "blob" then
    if type(v) ~= "string" then M.fail("Invalid type for parameter %s: blob (string) expected, got %s", where, type(v)) end
    return M.b64encode(v)
  elseif t == "structure" or t == "list" or t == "map" then
    M.fail("Invalid type for parameter %s: a %s cannot be bound here", where, t)
  end
  return M.number_text(ref, v, where)
end

-- ------------------------------------------------------------ percent-encoding

-- RFC 3986 unreserved characters pass; every other byte is %XX (upper hex),
-- the encoding SigV4 expects (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html).
local PCT = {}
for i = 0, 255 do
  local c = char(i)
  if not c:match("[A-Za-z0-9%-%._~]") then PCT[c] = format("%%%02X", i) end
end
local PCT_PATH = setmetatable({ ["/"] = "/" }, { __index = PCT })

--- Percent-encode every byte but the unreserved ones.
function M.pct(s)
  return (gsub(s, "[^A-Za-z0-9%-%._~]", PCT))
end

--- Same, keeping "/" (greedy URI labels).
function M.pct_path(s)
  return (gsub(s, "[^A-Za-z0-9%-%._~/]", PCT_PATH))
end

-- ------------------------------------------------------------------ base64

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local b64chars = {}
for i = 1, 64 do b64chars[i - 1] = sub(B64, i, i) end
local DEC = {}
for i = 1, 64 do DEC[byte(B64, i)] = i - 1 end
-- 12-bit groups -> two characters, so one lookup per 1.5 input bytes
local PAIR = {}
for i = 0, 4095 do PAIR[i] = b64chars[i >> 6] .. b64chars[i & 63] end

--- Base64 (RFC 4648, with padding); the C core's when it is built.
function M.b64encode(s)
  local core = M.core()
  if core and core.base64_encode then return core.base64_encode(s) end
  local len = #s
  local out, n = {}, 0
  local i = 1
  local full = len - len % 3
  while i <= full do
    local a, b, c = byte(s, i, i + 2)
    local v = (a << 16) | (b << 8) | c
    n = n + 1; out[n] = PAIR[v >> 12]
    n = n + 1; out[n] = PAIR[v & 4095]
    i = i + 3
  end
  local rest = len - full
  if rest == 1 then
    local v = byte(s, len) << 16
    n = n + 1; out[n] = PAIR[v >> 12] .. "=="
  elseif rest == 2 then
    local a, b = byte(s, len - 1, len)
    local v = (a << 16) | (b << 8)
    n = n + 1; out[n] = PAIR[v >> 12] .. b64chars[(v >> 6) & 63] .. "="
  end
  return concat(out)
end

--- Decode base64; the C core's strict decoder first, then a lenient one
-- (whitespace ignored, padding optional) for what it refuses.
-- @return the bytes, or nil, message
function M.b64decode(s)
  local core = M.core()
  if core and core.base64_decode then
    local v = core.base64_decode(s)
    if v then return v end
  end
  if s:find("[%s]") then s = gsub(s, "%s+", "") end
  s = gsub(s, "=+$", "")
  local len = #s
  if len % 4 == 1 then return nil, "invalid base64 length" end
  local out, n = {}, 0
  local i = 1
  while i <= len do
    local a, b, c, d = byte(s, i, i + 3)
    local va, vb = DEC[a], DEC[b]
    local vc, vd = c and DEC[c], d and DEC[d]
    if not va or not vb or (c and not vc) or (d and not vd) then return nil, "invalid base64 character" end
    local v = (va << 18) | (vb << 12) | ((vc or 0) << 6) | (vd or 0)
    n = n + 1
    if d then
      out[n] = char(v >> 16, (v >> 8) & 255, v & 255)
    elseif c then
      out[n] = char(v >> 16, (v >> 8) & 255)
    else
      out[n] = char(v >> 16)
    end
    i = i + 4
  end
  return concat(out)
end

-- ------------------------------------------------------------------ core

local core_mod
--- The C core when it is built (nil otherwise); looked up lazily so that
-- requiring the protocol modules loads nothing.
function M.core()
  if core_mod == nil then
    local ok, c = pcall(require, "aio_aws.core")
    core_mod = ok and c or false
  end
  return core_mod or nil
end

--- Content-MD5 value (base64 of the MD5 digest) for httpChecksumRequired
-- operations, from the C core's crypto part.
function M.md5_base64(body)
  local core = M.core()
  local f = core and core.md5_base64
  if not f then
    error("aio_aws.core.md5_base64 is not available: the C core was built without its crypto part", 0)
  end
  return f(body)
end

-- ------------------------------------------------------------------ errors

--- Adds the modeled members of the error shape for `code` to `fields`
-- (`read(shape)` reads them from the body; a malformed body leaves them
-- out rather than failing), with `error_shape` and, for shapes with the
-- retryable trait, `retryable = true`.
-- @return the members read, or nil
function M.modeled_error(svc, code, fields, read)
  local shape = svc:error_shape(code)
  if not shape then return nil end
  local ok, data = pcall(read, shape)
  if not ok and type(data) ~= "table" then error(data, 0) end -- a bug, not bad input
  if not ok or type(data) ~= "table" then data = nil end
  for k, v in pairs(data or {}) do
    if fields[k] == nil then fields[k] = v end
  end
  fields.error_shape = shape.name
  if shape.retryable then fields.retryable = true end
  return data
end

-- ------------------------------------------------------------------ status

-- Reason phrases (RFC 9110 §15) for error responses without a body, as
-- botocore uses http.client.responses.
local REASONS = {
  [300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
  [304] = "Not Modified", [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [406] = "Not Acceptable",
  [408] = "Request Timeout", [409] = "Conflict", [410] = "Gone", [411] = "Length Required",
  [412] = "Precondition Failed", [413] = "Request Entity Too Large", [414] = "Request-URI Too Long",
  [415] = "Unsupported Media Type", [416] = "Requested Range Not Satisfiable",
  [417] = "Expectation Failed", [422] = "Unprocessable Entity", [428] = "Precondition Required",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}

function M.reason(status)
  return REASONS[status] or ""
end

-- ------------------------------------------------------------------ tokens

--- Random UUID version 4 (RFC 9562 §5.4) for idempotency tokens. Lua 5.4
-- seeds its generator randomly at start-up; tokens need to be unique, not
-- secret.
function M.uuid4()
  local r1, r2 = math.random(0, 0xFFFFFFFF), math.random(0, 0xFFFFFFFF)
  local r3, r4 = math.random(0, 0xFFFFFFFF), math.random(0, 0xFFFFFFFF)
  return format("%08x-%04x-4%03x-%04x-%04x%08x",
    r1, r2 >> 16, r2 & 0xFFF, 0x8000 | (r3 & 0x3FFF), r3 >> 16, r4)
end

return M
