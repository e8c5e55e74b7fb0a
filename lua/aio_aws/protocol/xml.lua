--- XML for the rest-xml, query and ec2 protocols: a shape-directed writer
-- (request bodies) and a shape-directed reader over the compact form that
-- `core.xml_decode` produces (see csrc/xml.c: a leaf element is its text,
-- any other element a table of flat {name, value, ...} pairs with `_attr`
-- and `_text`).
--
-- Rules (https://smithy.io/2.0/spec/protocol-traits.html#xml-bindings and
-- botocore's serialize.py / parsers.py):
--  * a member's element name is its `locationName` (xmlName), else the
--    member name; a flattened list's items use the list member's
--    locationName when it has one;
--  * lists wrap items in `<member>` (or the member's locationName) unless
--    `flattened`; maps wrap `<entry><key/><value/></entry>` (key/value names
--    from their locationName) unless `flattened`, when each entry is an
--    element named after the map;
--  * `xmlAttribute` members are attributes of the enclosing element;
--    `xmlNamespace` {uri, prefix} adds an `xmlns[:prefix]` attribute;
--  * reading ignores namespaces (local names only) and unknown elements.
local common = require "aio_aws.protocol.common"
local timestamp = require "aio_aws.protocol.timestamp"

local M = {}

local absent, fail, number_text = common.absent, common.fail, common.number_text
local format, gsub, lower, byte = string.format, string.gsub, string.lower, string.byte
local tointeger, mtype = math.tointeger, math.type

-- ------------------------------------------------------------------ writer

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&apos;",
  ["\r"] = "&#xD;", ["\n"] = "&#xA;" }

--- Escape text or an attribute value (CR and LF as character references
-- so that they survive attribute-value normalisation).
local function escape(s)
  return (gsub(s, "[&<>\"'\r\n]", ESC))
end
M.escape = escape

-- xmlNamespace is {uri = ..., prefix = ...} in botocore models and a plain
-- URI string in some generated ones.
local function ns_attr(ns)
  if type(ns) == "string" then return ' xmlns="' .. escape(ns) .. '"' end
  if type(ns) ~= "table" or not ns.uri then return "" end
  local name = ns.prefix and ns.prefix ~= "" and ("xmlns:" .. ns.prefix) or "xmlns"
  return " " .. name .. '="' .. escape(ns.uri) .. '"'
end

local function scalar_text(ref, v, where, default_ts)
  local t = ref.type
  if t == "string" then
    return common.check_string(v, where)
  elseif t == "boolean" then
    return common.check_boolean(v, where) and "true" or "false"
  elseif t == "timestamp" then
    local secs, err = timestamp.parse(v)
    if not secs then fail("Invalid timestamp for parameter %s: %s", where, err) end
    return tostring(timestamp.format(secs, ref.timestampFormat or default_ts))
  elseif t == "blob" then
    if type(v) ~= "string" then fail("Invalid type for parameter %s: blob (string) expected, got %s", where, type(v)) end
    return common.b64encode(v)
  else
    return number_text(ref, v, where)
  end
end
M.scalar_text = scalar_text

local write -- forward

local function write_struct(buf, n, ref, v, name, where, extra_attrs)
  common.check_table(v, where, "structure")
  local shape = ref.target
  common.check_members(shape, v, where)
  local members, names = shape.members, shape.member_names
  local open = "<" .. name .. ns_attr(ref.xmlNamespace) .. (extra_attrs or "")
  -- attributes first: they belong to this element's start tag
  for i = 1, #names do
    local m = names[i]
    local mref = members[m]
    if mref.xmlAttribute then
      local mv = v[m]
      if not absent(mv) then
        local aname = mref.locationName or m
        open = open .. " " .. aname .. '="' .. escape(scalar_text(mref, mv, where .. "." .. m, "iso8601")) .. '"'
      end
    end
  end
  n = n + 1; buf[n] = open .. ">"
  for i = 1, #names do
    local m = names[i]
    local mref = members[m]
    local mv = v[m]
    if not absent(mv) and not mref.xmlAttribute and not mref.location then
      n = write(buf, n, mref, mv, mref.locationName or m, where .. "." .. m)
    end
  end
  n = n + 1; buf[n] = "</" .. name .. ">"
  return n
end

local function write_list(buf, n, ref, v, name, where)
  local count = common.check_list(v, where)
  local mref = ref.member
  if ref.flattened then
    for i = 1, count do
      n = write(buf, n, mref, v[i], name, where .. "[" .. i .. "]")
    end
    return n
  end
  local item = mref.locationName or "member"
  n = n + 1; buf[n] = "<" .. name .. ns_attr(ref.xmlNamespace) .. ">"
  for i = 1, count do
    n = write(buf, n, mref, v[i], item, where .. "[" .. i .. "]")
  end
  n = n + 1; buf[n] = "</" .. name .. ">"
  return n
end

local function write_map(buf, n, ref, v, name, where)
  local keys, count = common.map_keys(v, where)
  local kref, vref = ref.key, ref.value
  local kname, vname = kref.locationName or "key", vref.locationName or "value"
  if ref.flattened then
    for i = 1, count do
      local k = keys[i]
      n = n + 1; buf[n] = "<" .. name .. ">"
      n = write(buf, n, kref, k, kname, where)
      n = write(buf, n, vref, v[k], vname, where .. "." .. k)
      n = n + 1; buf[n] = "</" .. name .. ">"
    end
    return n
  end
  n = n + 1; buf[n] = "<" .. name .. ns_attr(ref.xmlNamespace) .. ">"
  for i = 1, count do
    local k = keys[i]
    n = n + 1; buf[n] = "<entry>"
    n = write(buf, n, kref, k, kname, where)
    n = write(buf, n, vref, v[k], vname, where .. "." .. k)
    n = n + 1; buf[n] = "</entry>"
  end
  n = n + 1; buf[n] = "</" .. name .. ">"
  return n
end

function write(buf, n, ref, v, name, where)
  local t = ref.type
  if t == "structure" then return write_struct(buf, n, ref, v, name, where) end
  if t == "list" then return write_list(buf, n, ref, v, name, where) end
  if t == "map" then return write_map(buf, n, ref, v, name, where) end
  n = n + 1
  buf[n] = "<" .. name .. ns_attr(ref.xmlNamespace) .. ">" .. escape(scalar_text(ref, v, where, "iso8601")) .. "</" .. name .. ">"
  return n
end

--- Serialize `v` as the element `name` described by `ref` (a structure
-- for a request body, or any shape for a payload member).
-- @return the XML text (no declaration)
function M.encode(ref, v, name, where)
  local buf = {}
  local n = write(buf, 0, ref, v, name, where or name)
  return table.concat(buf, "", 1, n)
end

-- ------------------------------------------------------------------ reader

-- Parse failures travel as a tagged error up to protocol.parse.
local PARSE = {}
M.PARSE = PARSE
local function perr(fmt, ...)
  error(setmetatable({ message = format(fmt, ...) }, PARSE), 0)
end
M.perr = perr

local read -- forward

local function text_of(node)
  if type(node) == "string" then return node end
  return node._text or ""
end
M.text_of = text_of

local SPECIAL = common.SPECIAL_FLOAT

local function read_scalar(ref, node)
  local s = type(node) == "string" and node or (node._text or "")
  local t = ref.type
  if t == "string" then return s end
  if t == "integer" or t == "long" or t == "byte" or t == "short" then
    local v = tonumber(s)
    if not v then perr("invalid %s value %q", t, s) end
    return tointeger(v) or v
  elseif t == "boolean" then
    return s == "true"
  elseif t == "timestamp" then
    local v, err = timestamp.parse(s)
    if not v then perr("%s", err) end
    return v
  elseif t == "float" or t == "double" then
    local v = tonumber(s) or SPECIAL[s]
    if not v then perr("invalid %s value %q", t, s) end
    return v
  elseif t == "blob" then
    local v, err = common.b64decode(s)
    if not v then perr("invalid base64 blob: %s", err) end
    return v
  end
  return s
end

-- Locations that bind an output member outside the body; "uri" and
-- "querystring" mean nothing in a response, so such members are read from
-- the body (Smithy: IgnoreQueryParamsInResponse).
local OUTPUT_LOCATED = { header = true, headers = true, statusCode = true }
M.OUTPUT_LOCATED = OUTPUT_LOCATED

-- Per-structure index: element name -> member name / reference / kind.
-- kind: "flist" flattened list, "fmap" flattened map, "s" plain string,
-- "v" anything else.
local function struct_index(shape)
  local idx = shape._xml_index
  if idx then return idx end
  local names, refs, kinds, attrs = {}, {}, {}, nil
  local members = shape.members
  for _, m in ipairs(shape.member_names) do
    local mref = members[m]
    if mref.xmlAttribute then
      attrs = attrs or {}
      attrs[#attrs + 1] = m
    elseif not OUTPUT_LOCATED[mref.location or false] and not mref.eventheader then
      local key, kind
      if mref.type == "list" and mref.flattened then
        key, kind = mref.member.locationName or mref.locationName or m, "flist"
      elseif mref.type == "map" and mref.flattened then
        key, kind = mref.locationName or m, "fmap"
      else
        key, kind = mref.locationName or m, (mref.type == "string" and not mref.jsonvalue) and "s" or "v"
      end
      names[key], refs[key], kinds[key] = m, mref, kind
    end
  end
  idx = { names = names, refs = refs, kinds = kinds, attrs = attrs }
  rawset(shape, "_xml_index", idx)
  return idx
end

local function read_entry(ref, node, out)
  -- node: an <entry> (or flattened map element) holding key and value
  if type(node) ~= "table" then return end
  local kref, vref = ref.key, ref.value
  local kname, vname = kref.locationName or "key", vref.locationName or "value"
  local k, v
  for i = 1, #node, 2 do
    local nm = node[i]
    if nm == kname then k = read(kref, node[i + 1])
    elseif nm == vname then v = read(vref, node[i + 1]) end
  end
  if k ~= nil then
    if v == nil then v = vref.type == "string" and "" or nil end
    out[k] = v
  end
end

local function read_struct(ref, node)
  local shape = ref.target
  local out = {}
  if type(node) ~= "table" then return out end
  local idx = struct_index(shape)
  local names, refs, kinds = idx.names, idx.refs, idx.kinds
  for i = 1, #node, 2 do
    local key = node[i]
    local kind = kinds[key]
    if kind then
      local v = node[i + 1]
      local m = names[key]
      if kind == "s" then
        out[m] = type(v) == "string" and v or (v._text or "")
      elseif kind == "v" then
        out[m] = read(refs[key], v)
      elseif kind == "flist" then
        local l = out[m]
        if not l then l = {}; out[m] = l end
        l[#l + 1] = read(refs[key].member, v)
      else -- fmap
        local mp = out[m]
        if not mp then mp = {}; out[m] = mp end
        read_entry(refs[key], v, mp)
      end
    end
  end
  if idx.attrs and node._attr then
    local attr = node._attr
    for _, m in ipairs(idx.attrs) do
      local mref = shape.members[m]
      local v = attr[mref.locationName or m]
      if v ~= nil then out[m] = read_scalar(mref, v) end
    end
  end
  if shape.union then
    local set, first = 0, nil
    for k in pairs(out) do set = set + 1; first = first or k end
    if set == 0 and #node > 0 then
      -- a member this model does not know (https://smithy.io/2.0/spec/aggregate-types.html#union)
      return { SDK_UNKNOWN_MEMBER = { name = node[1] } }
    end
  end
  return out
end

local function read_list(ref, node)
  local out = {}
  if type(node) ~= "table" then return out end
  local mref = ref.member
  local n = 0
  for i = 2, #node, 2 do
    n = n + 1
    out[n] = read(mref, node[i])
  end
  return out
end

local function read_map(ref, node)
  local out = {}
  if type(node) ~= "table" then return out end
  for i = 2, #node, 2 do
    read_entry(ref, node[i], out)
  end
  return out
end

function read(ref, node)
  local t = ref.type
  if t == "structure" then return read_struct(ref, node) end
  if t == "list" then
    if ref.flattened then
      -- a flattened list reached directly (payload): one item
      return { read(ref.member, node) }
    end
    return read_list(ref, node)
  end
  if t == "map" then
    if ref.flattened then
      local out = {}
      read_entry(ref, node, out)
      return out
    end
    return read_map(ref, node)
  end
  return read_scalar(ref, node)
end

--- Read a decoded node as the shape `ref` describes.
M.read = read
M.read_scalar = read_scalar

--- First child named `name` of a decoded node (nil when absent).
function M.child(node, name)
  if type(node) ~= "table" then return nil end
  for i = 1, #node, 2 do
    if node[i] == name then return node[i + 1] end
  end
  return nil
end

--- Decode XML text with the C core.
-- @return node, root_name, or nil, message
function M.decode(text)
  local core = common.core()
  if not core or not core.xml_decode then
    error("aio_aws.core.xml_decode is not available (build the C core: make)", 0)
  end
  return core.xml_decode(text)
end

--- A generic (shape-less) view of a decoded node: leaves become strings,
-- elements become tables keyed by child name (repeated names: last wins).
-- Used for error bodies, as botocore's _replace_nodes does.
function M.plain(node)
  if type(node) ~= "table" then return node end
  if #node == 0 then return node._text or "" end
  local out = {}
  for i = 1, #node, 2 do out[node[i]] = M.plain(node[i + 1]) end
  return out
end

-- silence "unused" for helpers kept for symmetry
local _ = lower, byte, mtype

return M
