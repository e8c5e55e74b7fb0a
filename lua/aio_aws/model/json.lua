--- A small pure-Lua JSON decoder and encoder for the few places where
-- lua-cjson is not enough:
--
--  * object key order: botocore models list structure members in the order
--    the service expects them on the wire (XML bodies follow an XSD
--    sequence), and cjson forgets it. `decode(s, {order = true})` records
--    each object's keys, in document order, under the key `M.ORDER` (a table
--    value, so it can never clash with a JSON key);
--  * exact integers: cjson reads every number as a double, so a Long above
--    2^53 loses digits. This decoder reads integers as Lua integers when
--    they fit in 64 bits;
--  * deterministic output: `encode` sorts object keys and writes integers
--    exactly, so generated model files are reproducible byte for byte.
--
-- It is slower than cjson (a few MB/s) and only used off the hot path:
-- model generation, loading raw botocore files from AWS_DATA_PATH, and the
-- rare JSON response that carries a 16+ digit number.
--
-- decode returns `value` or `nil, err`; it never raises on bad input.
-- JSON null decodes to `M.null` (cjson.null when cjson is installed, so
-- the two decoders agree).
local M = {}

local byte, sub, find, char = string.byte, string.sub, string.find, string.char
local concat, tointeger = table.concat, math.tointeger
local utf8char = utf8.char

local ok_cjson, cjson = pcall(require, "cjson")
M.null = ok_cjson and cjson.null or setmetatable({}, { __name = "json.null", __tostring = function() return "null" end })
M.ORDER = setmetatable({}, { __name = "json.ORDER" })
--- Marks a table so that `encode` writes it as an array even when empty.
M.array_mt = { __name = "json.array" }
M.empty_array = setmetatable({}, M.array_mt)

local ESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function perr(s, pos, msg)
  local line, col = 1, pos
  local i = 1
  while true do
    local nl = find(s, "\n", i, true)
    if not nl or nl >= pos then break end
    line = line + 1
    col = pos - nl
    i = nl + 1
  end
  error({ json_error = string.format("JSON decode error at line %d, column %d: %s", line, col, msg) }, 0)
end

--- Decode JSON text.
-- @tparam string s JSON text
-- @tparam[opt] table opts `order = true` to record object key order under `M.ORDER`
-- @return the value, or `nil, message`
function M.decode(s, opts)
  if type(s) ~= "string" then error("json.decode: string expected", 2) end
  local keep_order = opts and opts.order
  local null = M.null
  local pos = 1
  local value -- forward

  local function skip()
    pos = find(s, "[^ \t\r\n]", pos) or (#s + 1)
  end

  local function str()
    -- pos at the opening quote
    local i = pos + 1
    local parts, np = nil, 0
    while true do
      local j = find(s, '["\\%c]', i)
      if not j then perr(s, pos, "unterminated string") end
      local c = byte(s, j)
      if c == 34 then -- "
        local piece = sub(s, i, j - 1)
        pos = j + 1
        if parts then
          np = np + 1; parts[np] = piece
          return concat(parts)
        end
        return piece
      elseif c == 92 then -- backslash
        parts = parts or {}
        np = np + 1; parts[np] = sub(s, i, j - 1)
        local e = sub(s, j + 1, j + 1)
        if e == "u" then
          local hex = sub(s, j + 2, j + 5)
          if not find(hex, "^%x%x%x%x$") then perr(s, j, "bad \\u escape") end
          local cp = tonumber(hex, 16)
          local nexti = j + 6
          if cp >= 0xD800 and cp <= 0xDBFF then
            local lo = find(s, "^\\u[dD][c-fC-F]%x%x", nexti) and tonumber(sub(s, nexti + 2, nexti + 5), 16)
            if lo then
              cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
              nexti = nexti + 6
            end
          end
          np = np + 1; parts[np] = utf8char(cp)
          i = nexti
        else
          local r = ESC[e]
          if not r then perr(s, j, "bad escape") end
          np = np + 1; parts[np] = r
          i = j + 2
        end
      else
        perr(s, j, "control character in string")
      end
    end
  end

  local function num()
    local a, b = find(s, "^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if not a then perr(s, pos, "unexpected character '" .. sub(s, pos, pos) .. "'") end
    local text = sub(s, a, b)
    local n = tonumber(text)
    if not n then perr(s, pos, "bad number '" .. text .. "'") end
    if not find(text, "[.eE]") then
      n = tointeger(n) or n
    end
    pos = b + 1
    return n
  end

  function value(depth)
    if depth > 1000 then perr(s, pos, "nesting too deep") end
    skip()
    local c = byte(s, pos)
    if c == 123 then -- {
      local obj, order, n = {}, nil, 0
      if keep_order then order = {}; obj[M.ORDER] = order end
      pos = pos + 1
      skip()
      if byte(s, pos) == 125 then pos = pos + 1; return obj end
      while true do
        skip()
        if byte(s, pos) ~= 34 then perr(s, pos, "object key expected") end
        local k = str()
        skip()
        if byte(s, pos) ~= 58 then perr(s, pos, "':' expected") end
        pos = pos + 1
        local v = value(depth + 1)
        if order and obj[k] == nil then n = n + 1; order[n] = k end
        obj[k] = v
        skip()
        c = byte(s, pos)
        if c == 44 then pos = pos + 1
        elseif c == 125 then pos = pos + 1; return obj
        else perr(s, pos, "',' or '}' expected") end
      end
    elseif c == 91 then -- [
      local arr, n = setmetatable({}, M.array_mt), 0
      pos = pos + 1
      skip()
      if byte(s, pos) == 93 then pos = pos + 1; return arr end
      while true do
        n = n + 1
        arr[n] = value(depth + 1)
        skip()
        c = byte(s, pos)
        if c == 44 then pos = pos + 1
        elseif c == 93 then pos = pos + 1; return arr
        else perr(s, pos, "',' or ']' expected") end
      end
    elseif c == 34 then
      return str()
    elseif c == 116 then
      if sub(s, pos, pos + 3) == "true" then pos = pos + 4; return true end
    elseif c == 102 then
      if sub(s, pos, pos + 4) == "false" then pos = pos + 5; return false end
    elseif c == 110 then
      if sub(s, pos, pos + 3) == "null" then pos = pos + 4; return null end
    elseif c == nil then
      perr(s, pos, "unexpected end of input")
    else
      return num()
    end
    perr(s, pos, "unexpected character '" .. sub(s, pos, pos) .. "'")
  end

  local ok, res = pcall(function()
    local v = value(0)
    skip()
    if pos <= #s then perr(s, pos, "trailing characters") end
    return v
  end)
  if ok then return res end
  if type(res) == "table" and res.json_error then return nil, res.json_error end
  error(res, 0)
end

-- ---------------------------------------------------------------- encoding

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for i = 0, 31 do
  local ch = char(i)
  if not ESCAPES[ch] then ESCAPES[ch] = string.format("\\u%04x", i) end
end
ESCAPES["\127"] = "\\u007f"

--- Quote a Lua string as a JSON string (bytes >= 0x80 pass through:
-- the input is expected to be UTF-8).
function M.quote(v)
  return '"' .. string.gsub(v, '[%c"\\]', ESCAPES) .. '"'
end

--- Format a number the way JSON wants it: integers exactly, floats with
-- the fewest digits that read back to the same double (17 at most).
-- Non-finite values have no JSON form; callers decide what to do with them.
function M.number(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v ~= v or v == math.huge or v == -math.huge then return nil end
  if v == math.floor(v) and v > -1e15 and v < 1e15 then return string.format("%d", v) end
  local s = string.format("%.15g", v)
  if tonumber(s) ~= v then s = string.format("%.17g", v) end
  return s
end

local function is_array(t)
  if getmetatable(t) == M.array_mt then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for k in pairs(t) do
    if k ~= M.ORDER then count = count + 1 end
  end
  return count == n
end

local function enc(v, buf, n, opts, depth)
  local tv = type(v)
  if tv == "string" then
    n = n + 1; buf[n] = M.quote(v)
  elseif tv == "number" then
    local s = M.number(v)
    if not s then error("json.encode: cannot encode non-finite number", 0) end
    n = n + 1; buf[n] = s
  elseif tv == "boolean" then
    n = n + 1; buf[n] = v and "true" or "false"
  elseif v == nil or v == M.null then
    n = n + 1; buf[n] = "null"
  elseif tv == "table" then
    if depth > 1000 then error("json.encode: nesting too deep (cycle?)", 0) end
    if is_array(v) then
      n = n + 1; buf[n] = "["
      for i = 1, #v do
        if i > 1 then n = n + 1; buf[n] = "," end
        n = enc(v[i], buf, n, opts, depth + 1)
      end
      n = n + 1; buf[n] = "]"
    else
      local keys, nk = {}, 0
      for k in pairs(v) do
        if k ~= M.ORDER then
          if type(k) ~= "string" then error("json.encode: object key must be a string, got " .. type(k), 0) end
          nk = nk + 1; keys[nk] = k
        end
      end
      table.sort(keys)
      n = n + 1; buf[n] = "{"
      for i = 1, nk do
        local k = keys[i]
        if i > 1 then n = n + 1; buf[n] = "," end
        n = n + 1; buf[n] = M.quote(k)
        n = n + 1; buf[n] = ":"
        n = enc(v[k], buf, n, opts, depth + 1)
      end
      n = n + 1; buf[n] = "}"
    end
  else
    error("json.encode: cannot encode a " .. tv, 0)
  end
  return n
end

--- Encode a Lua value as JSON text with sorted object keys.
-- Tables whose keys are exactly 1..n are arrays; an empty table is `{}`
-- unless it carries `M.array_mt` (see `M.empty_array`).
-- @return text, or `nil, message` for values JSON cannot hold
function M.encode(v)
  local buf = {}
  local ok, res = pcall(enc, v, buf, 0, nil, 0)
  if not ok then return nil, tostring(res) end
  return concat(buf, "", 1, res)
end

return M
