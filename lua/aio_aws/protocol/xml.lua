--- XML for the rest-xml, query and ec2 protocols: a shape-directed writer
-- (request bodies) and a shape-directed reader over the compact form that
-- `core.xml_decode` produces (csrc/xml.c: a leaf element is its text; an
-- element with distinct child names a record {name = value}; one with
-- repeated names a sequence {name, value, ...}; `_attr`, `_text`, `_n`).
-- The reader converts records in place and returns them as the output,
-- so a decoded node is consumed by `read`.
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

local absent = common.absent
local format, gsub = string.format, string.gsub
local tointeger = math.tointeger

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

local scalar_text = common.scalar_text
M.scalar_text = scalar_text

local write -- forward

local function write_struct(buf, n, ref, v, name, where)
  common.check_table(v, where, "structure")
  local shape = ref.target
  common.check_members(shape, v, where)
  local members, names = shape.members, shape.member_names
  local open = "<" .. name .. ns_attr(ref.xmlNamespace)
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
--
-- Decoded nodes (csrc/xml.c): a string (leaf), a record table (distinct
-- child names -> values; t[1] == nil) or a sequence table (flat
-- {name, value, ...} pairs in document order), with `_attr` / `_text`.
-- Records are converted in place and returned as the output table: most
-- fields of a parsed response are strings that need no change, so
-- converting the few others is cheaper than copying.

-- Parse failures travel as a tagged error up to protocol.parse.
local PARSE = {}
M.PARSE = PARSE
local function perr(fmt, ...)
  error(setmetatable({ message = format(fmt, ...) }, PARSE), 0)
end
M.perr = perr

local read, read_entry_into -- forward

local function text_of(node)
  if type(node) == "string" then return node end
  return node._text or ""
end
M.text_of = text_of

local SPECIAL = common.SPECIAL_FLOAT
local iso_fast = timestamp.iso_fast
local tparse = timestamp.parse

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
    local v, err = tparse(s)
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

-- Kinds of a member, so that structures convert leaf scalars inline instead
-- of dispatching through `read` (a page of ListObjectsV2 holds thousands).
local K_STR, K_INT, K_BOOL, K_TS, K_FLOAT, K_BLOB, K_STRUCT, K_LIST, K_MAP, K_FLIST, K_FMAP, K_OTHER =
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
local KIND = { string = K_STR, integer = K_INT, long = K_INT, byte = K_INT, short = K_INT,
  boolean = K_BOOL, timestamp = K_TS, float = K_FLOAT, double = K_FLOAT, blob = K_BLOB,
  structure = K_STRUCT, list = K_LIST, map = K_MAP }

local function kind_of(ref)
  local k = KIND[ref.type] or K_OTHER
  if k == K_STR and ref.jsonvalue then k = K_OTHER end
  if k == K_LIST and ref.flattened then k = K_FLIST end
  if k == K_MAP and ref.flattened then k = K_FMAP end
  return k
end

-- Per-structure index by element name: member name, reference, kind;
-- `attrs` lists the xmlAttribute members.
local function struct_index(shape)
  local idx = shape._xml_index
  if idx then return idx end
  local names, refs, kinds, attrs = {}, {}, {}, nil
  local keys, klist, mlist, rlist = {}, {}, {}, {}
  local renamed = false
  local members = shape.members
  for _, m in ipairs(shape.member_names) do
    local mref = members[m]
    if mref.xmlAttribute then
      attrs = attrs or {}
      attrs[#attrs + 1] = m
    elseif not OUTPUT_LOCATED[mref.location or false] and not mref.eventheader then
      local kind = kind_of(mref)
      local key
      if kind == K_FLIST then
        key = mref.member.locationName or mref.locationName or m
      else
        key = mref.locationName or m
      end
      if key ~= m then renamed = true end
      names[key], refs[key], kinds[key] = m, mref, kind
      local i = #keys + 1
      keys[i], klist[i], mlist[i], rlist[i] = key, kind, m, mref
    end
  end
  idx = { names = names, refs = refs, kinds = kinds, attrs = attrs, renamed = renamed,
    keys = keys, klist = klist, mlist = mlist, rlist = rlist, count = #keys }
  rawset(shape, "_xml_index", idx)
  return idx
end

local function read_entry(ref, node, out)
  -- node: an <entry> (or flattened map element) holding key and value
  if type(node) ~= "table" then return end
  local kref, vref = ref.key, ref.value
  local kname, vname = kref.locationName or "key", vref.locationName or "value"
  local kn, vn
  if node[1] == nil then
    kn, vn = node[kname], node[vname]
  else
    for i = 1, #node, 2 do
      local nm = node[i]
      if nm == kname then kn = node[i + 1] elseif nm == vname then vn = node[i + 1] end
    end
  end
  if kn == nil then return end
  local k = read(kref, kn)
  if vn == nil then
    out[k] = vref.type == "string" and "" or nil
  else
    out[k] = read(vref, vn)
  end
end

-- Leaf scalars by kind (v is a string); nil kind result means "not a leaf kind".
local function leaf(kind, ref, v)
  if kind == K_STR then return v end
  if kind == K_INT then
    local n = tonumber(v)
    if not n then perr("invalid integer value %q", v) end
    return tointeger(n) or n
  end
  if kind == K_TS then
    local t = iso_fast(v)
    if t then return t end
    local err
    t, err = tparse(v)
    if not t then perr("%s", err) end
    return t
  end
  if kind == K_BOOL then return v == "true" end
  return read_scalar(ref, v)
end

local table_maker = common.table_maker
local read_struct -- forward

-- One value of a member found in a structure (not the flattened kinds).
local function member_value(kind, ref, v)
  if kind <= K_BLOB then
    if type(v) == "string" then
      if kind == K_STR then return v end
      return leaf(kind, ref, v)
    end
    return read_scalar(ref, v)
  end
  if kind == K_STRUCT then return read_struct(ref, v) end
  return read(ref, v)
end

-- Members bound to attributes of the element (xmlAttribute).
local function read_attrs(shape, idx, attr, out)
  if not (idx.attrs and attr) then return end
  for _, m in ipairs(idx.attrs) do
    local mref = shape.members[m]
    local v = attr[mref.locationName or m]
    if v ~= nil then out[m] = read_scalar(mref, v) end
  end
end

-- A record converted in place: members are looked up by element name; the
-- `_n` count from the decoder says whether unknown elements are left, which
-- then get dropped in a second pass.
local function struct_record(shape, idx, node)
  local total = node._n or 0
  local attr = node._attr
  node._n, node._attr, node._text = nil, nil, nil
  local keys, klist, mlist, rlist = idx.keys, idx.klist, idx.mlist, idx.rlist
  local found = 0
  local moved
  for i = 1, idx.count do
    local key = keys[i]
    local v = node[key]
    if v ~= nil then
      found = found + 1
      local kind = klist[i]
      local conv
      if kind == K_STR then
        conv = type(v) == "string" and v or (v._text or "")
      elseif kind == K_TS and type(v) == "string" then
        conv = iso_fast(v) or leaf(K_TS, nil, v)
      elseif kind == K_INT and type(v) == "string" then
        conv = tonumber(v)
        if not conv or conv ~= conv // 1 then conv = leaf(K_INT, nil, v) end
      elseif kind == K_FLIST then
        local item = rlist[i].member
        conv = { item.type == "structure" and read_struct(item, v) or read(item, v) }
      elseif kind == K_FMAP then
        conv = {}
        read_entry(rlist[i], v, conv)
      else
        conv = member_value(kind, rlist[i], v)
      end
      local m = mlist[i]
      if m == key then
        if conv ~= v then node[key] = conv end
      else
        -- renamed: write after every lookup (a new name may be another's element name)
        node[key] = nil
        moved = moved or {}
        moved[#moved + 1] = m
        moved[#moved + 1] = conv
      end
    end
  end
  local unknown
  if found < total then
    -- elements the model does not know: drop them
    local known = idx.kinds
    for k in next, node do
      if known[k] == nil then unknown = unknown or k end
    end
    if unknown then
      for k in next, node do
        if known[k] == nil then node[k] = nil end
      end
    end
  end
  if moved then
    for i = 1, #moved, 2 do node[moved[i]] = moved[i + 1] end
  end
  read_attrs(shape, idx, attr, node)
  if shape.union and unknown and next(node) == nil then
    -- a member this model does not know (https://smithy.io/2.0/spec/aggregate-types.html#union)
    return { SDK_UNKNOWN_MEMBER = { name = unknown } }
  end
  return node
end

-- A sequence read into a new table.
local function struct_sequence(shape, idx, node)
  local kinds, names, refs = idx.kinds, idx.names, idx.refs
  local out = (shape._new_table or table_maker(shape))()
  local lens -- lengths of the flattened lists being filled
  for i = 1, #node, 2 do
    local key = node[i]
    local kind = kinds[key]
    if kind then
      local v = node[i + 1]
      if kind == K_FLIST then
        local m = names[key]
        local l = out[m]
        if not l then
          l = {}
          out[m] = l
          lens = lens or {}
          lens[m] = 0
        end
        local n = lens[m] + 1
        lens[m] = n
        local item = refs[key].member
        l[n] = item.type == "structure" and read_struct(item, v) or read(item, v)
      elseif kind == K_FMAP then
        local m = names[key]
        local mp = out[m]
        if not mp then mp = {}; out[m] = mp end
        read_entry(refs[key], v, mp)
      else
        out[names[key]] = member_value(kind, refs[key], v)
      end
    end
  end
  read_attrs(shape, idx, node._attr, out)
  if shape.union and next(out) == nil and #node > 0 then
    return { SDK_UNKNOWN_MEMBER = { name = node[1] } }
  end
  return out
end

function read_struct(ref, node)
  local shape = ref.target
  if type(node) ~= "table" then return {} end
  local idx = shape._xml_index or struct_index(shape)
  if node[1] == nil then return struct_record(shape, idx, node) end
  return struct_sequence(shape, idx, node)
end

-- Calls fn(value) for each child of a node, in document order for
-- sequences (records have one child per name; lists and maps hold one name).
local function children(node, fn, a, b)
  if type(node) ~= "table" then return end
  if node[1] == nil then
    for k, v in next, node do
      if k ~= "_attr" and k ~= "_text" and k ~= "_n" then fn(v, a, b) end
    end
  else
    for i = 2, #node, 2 do fn(node[i], a, b) end
  end
end

local function read_list(ref, node)
  local out = {}
  if type(node) ~= "table" then return out end
  local mref = ref.member
  local n = 0
  if node[1] == nil then
    children(node, function(v) n = n + 1; out[n] = read(mref, v) end)
    return out
  end
  if mref.type == "structure" then
    for i = 2, #node, 2 do
      n = n + 1
      out[n] = read_struct(mref, node[i])
    end
  elseif mref.type == "string" and not mref.jsonvalue then
    for i = 2, #node, 2 do
      local v = node[i]
      n = n + 1
      out[n] = type(v) == "string" and v or (v._text or "")
    end
  else
    for i = 2, #node, 2 do
      n = n + 1
      out[n] = read(mref, node[i])
    end
  end
  return out
end

local function read_map(ref, node)
  local out = {}
  children(node, read_entry_into, ref, out)
  return out
end

function read_entry_into(v, ref, out)
  read_entry(ref, v, out)
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

--- Read a decoded node as the shape `ref` describes (records are
-- converted in place). Raises a PARSE error for malformed values.
M.read = read
M.read_scalar = read_scalar

-- ---------------------------------------------------------- shaped decoding

-- The schema core.xml_decode_shaped follows (csrc/xml.c, "shape-directed
-- decoding"): one node per structure, fields keyed by element name exactly
-- as struct_index sees them. nil when the shape has something only the
-- Lua reader handles (maps, blobs, unions, attributes, JSON values).
local SHAPED_LEAF = { [K_STR] = true, [K_INT] = true, [K_BOOL] = true, [K_TS] = true, [K_FLOAT] = true }

local function compile_schema(root)
  local nodes, index = {}, {}
  local ok = true
  local node_for
  local function item_desc(item)
    if item.type == "structure" then return K_STRUCT, node_for(item.target) end
    local k = kind_of(item)
    if SHAPED_LEAF[k] then return k, nil end
    ok = false
    return 0, nil
  end
  function node_for(shape)
    local n = index[shape]
    if n then return n end
    if shape.union then ok = false return 1 end
    n = #nodes + 1
    index[shape] = n
    local fields, at = {}, {}
    nodes[n] = fields
    for _, m in ipairs(shape.member_names) do
      local mref = shape.members[m]
      if mref.xmlAttribute then
        ok = false
      elseif not OUTPUT_LOCATED[mref.location or false] and not mref.eventheader then
        local kind = kind_of(mref)
        local f = { member = m, kind = kind, elem = mref.locationName or m }
        if kind == K_STRUCT then
          f.sub = node_for(mref.target)
        elseif kind == K_LIST then
          f.item_kind, f.sub = item_desc(mref.member)
        elseif kind == K_FLIST then
          f.elem = mref.member.locationName or mref.locationName or m
          f.item_kind, f.sub = item_desc(mref.member)
        elseif not SHAPED_LEAF[kind] then
          ok = false
        end
        -- two members on one element name (S3's deprecated Event / Events):
        -- left to the Lua reader
        if at[f.elem] then ok = false end
        fields[#fields + 1] = f
        at[f.elem] = true
      end
    end
    return n
  end
  node_for(root)
  if not ok then return nil end
  return common.core().xml_schema(nodes)
end

--- The body of a structure `ref` decoded straight to its output by the C
-- core, or nil when that path declines (the caller then uses decode + read,
-- which also reports what is malformed).
function M.read_body(ref, body)
  local shape = ref.target
  local schema = shape._xml_schema
  if schema == nil then
    schema = compile_schema(shape) or false
    rawset(shape, "_xml_schema", schema)
  end
  if not schema then return nil end
  local out = common.core().xml_decode_shaped(body, schema)
  if not out then return nil end
  return out
end

--- First child named `name` of a decoded node (nil when absent).
function M.child(node, name)
  if type(node) ~= "table" then return nil end
  if node[1] == nil then return node[name] end
  for i = 1, #node, 2 do
    if node[i] == name then return node[i + 1] end
  end
  return nil
end

--- Code, message, type, request id, host id and the error element of an
-- XML error body, whichever layout it has:
--   <ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>  (query, rest-xml)
--   <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>  (ec2)
--   <Error><Code/><Message/><RequestId/><HostId/></Error>                               (S3)
-- Returns nil when the body is not XML.
function M.error_info(body)
  local node, root = M.decode(body)
  if node == nil then return nil end
  local info = {}
  local err_node, rid
  if root == "ErrorResponse" then
    err_node = M.child(node, "Error")
    rid = M.child(node, "RequestId")
  elseif root == "Response" then
    local errs = M.child(node, "Errors")
    err_node = errs and M.child(errs, "Error")
    rid = M.child(node, "RequestID") or M.child(node, "RequestId")
  else
    err_node = node
  end
  if type(err_node) == "table" then
    local c, m, t = M.child(err_node, "Code"), M.child(err_node, "Message"), M.child(err_node, "Type")
    info.code = c and text_of(c)
    info.message = m and text_of(m)
    info.type = t and text_of(t)
    rid = rid or M.child(err_node, "RequestId")
    local h = M.child(err_node, "HostId")
    info.host_id = h and text_of(h)
  end
  info.request_id = rid and text_of(rid)
  info.node = err_node
  return info
end

--- Decode XML text with the C core.
-- @return node, root_name, or nil, message
function M.decode(text, mode)
  local core = common.core()
  if not core or not core.xml_decode then
    error("aio_aws.core.xml_decode is not available (build the C core: make)", 0)
  end
  return core.xml_decode(text, mode)
end

--- A generic (shape-less) view of a decoded node: leaves become strings,
-- elements become tables keyed by child name (repeated names: last wins).
function M.plain(node)
  if type(node) ~= "table" then return node end
  local out = {}
  local any = false
  if node[1] == nil then
    for k, v in next, node do
      if k ~= "_attr" and k ~= "_text" and k ~= "_n" then out[k] = M.plain(v); any = true end
    end
  else
    for i = 1, #node, 2 do out[node[i]] = M.plain(node[i + 1]); any = true end
  end
  if not any then return node._text or "" end
  return out
end

return M
