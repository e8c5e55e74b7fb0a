--- Turns botocore-format model data into the compact form that
-- tools/gen-models writes to lua/aio_aws/models/ and that the loader reads.
--
-- The compact form is botocore's own layout minus what a client never reads
-- at run time (documentation, examples, "box", "xmlOrder", ...), with one
-- change: a structure's `members` object becomes an ordered array of
-- `[name, member-reference]` pairs. Member order is part of the wire format
-- for XML bodies (services validate against an XSD sequence), and JSON
-- object order does not survive lua-cjson, so it is made explicit here.
--
-- Input tables come from `aio_aws.model.json.decode(text, {order = true})`
-- (object key order under `json.ORDER`); tables without that order (built by
-- hand, or by cjson) fall back to sorted member names.
local json = require "aio_aws.model.json"

local M = {}

M.FORMAT = "aio-aws-model/1"

-- Traits that only feed documentation or are ignored by every botocore
-- serializer and parser.
local DROP = {
  documentation = true, documentationUrl = true, examples = true,
  deprecatedMessage = true, box = true, xmlOrder = true, wrapper = true,
  deprecatedSince = true,
}

local ORDER = json.ORDER

local function keys_of(t)
  local order = t[ORDER]
  if order then return order end
  local ks = {}
  for k in pairs(t) do
    if type(k) == "string" then ks[#ks + 1] = k end
  end
  table.sort(ks)
  return ks
end

-- Deep copy without documentation and without the ORDER bookkeeping.
local function strip(v)
  if type(v) ~= "table" then return v end
  local out = {}
  if getmetatable(v) == json.array_mt then setmetatable(out, json.array_mt) end
  for k, x in pairs(v) do
    if k ~= ORDER and not DROP[k] then out[k] = strip(x) end
  end
  return out
end
M.strip = strip

local function shape(def)
  local out = {}
  for k, v in pairs(def) do
    if k ~= ORDER and not DROP[k] then
      if k == "members" and def.type == "structure" and type(v) == "table" and v[1] == nil then
        -- botocore object -> ordered pairs
        local list = setmetatable({}, json.array_mt)
        for _, name in ipairs(keys_of(v)) do
          list[#list + 1] = setmetatable({ name, strip(v[name]) }, json.array_mt)
        end
        out.members = list
      else
        out[k] = strip(v)
      end
    end
  end
  return out
end
M.shape = shape

--- Compact a decoded service-2.json (or a protocol-test suite, which has the
-- same `metadata`/`shapes`/`operations` layout).
-- @tparam table raw decoded service description
-- @treturn table compact description
function M.service(raw)
  local out = {
    format = M.FORMAT,
    metadata = strip(raw.metadata or {}),
    operations = {},
    shapes = {},
  }
  for name, op in pairs(raw.operations or {}) do
    if type(name) == "string" then out.operations[name] = strip(op) end
  end
  for name, def in pairs(raw.shapes or {}) do
    if type(name) == "string" then out.shapes[name] = shape(def) end
  end
  return out
end

--- paginators-1.json -> its `pagination` table (documentation dropped).
function M.paginators(raw)
  return raw and strip(raw.pagination or {}) or nil
end

--- waiters-2.json -> `{version = 2, waiters = {...}}` (descriptions dropped).
function M.waiters(raw)
  if not raw then return nil end
  local out = strip(raw)
  for _, w in pairs(out.waiters or {}) do
    w.description = nil
  end
  return out
end

return M
