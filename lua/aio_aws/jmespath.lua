--- JMESPath (https://jmespath.org/specification.html) for paginators,
-- waiters and `paginator:search`.
--
--     local jmespath = require "aio_aws.jmespath"
--     jmespath.search("Contents[-1].Key", page)             --> "k999"
--     local expr = jmespath.compile("services[?status != 'ACTIVE'].name")
--     expr:search(data)
--
-- The whole language of jmespath.py 1.0.1 (the library botocore uses, which
-- is the reference here: the lexer, the Pratt parser and the interpreter
-- follow its `lexer.py`, `parser.py`, `visitor.py` and `functions.py`, and
-- spec/jmespath_spec.lua checks it against the compliance suite and against
-- Debian's python3-jmespath on generated expressions): identifiers, quoted
-- identifiers, sub-expressions, indexes, slices, list and object projections,
-- flatten, filters, comparisons, `&&`, `||`, `!`, pipes, multiselect lists
-- and hashes, JSON and raw string literals, `@`, expression references and
-- every built-in function (abs avg ceil contains ends_with floor join keys
-- length map max max_by merge min min_by not_null reverse sort sort_by
-- starts_with sum to_array to_number to_string type values).
--
-- Lua values: JSON null is `nil` or `cjson.null` in the data; a result that
-- is null is returned as `nil`, nulls inside a result table are
-- `cjson.null`. A table is an array when its metatable is one of the JSON
-- array markers (`cjson.array_mt` when present, `aio_aws.model.json.array_mt`,
-- `M.array_mt`) or when `t[1] ~= nil`; an empty table without a marker (how
-- parsed AWS responses carry an empty list or map) counts as an empty array
-- and as an empty object, both false-y. Object keys are visited in the
-- order the data knows (objects built here, and objects decoded by
-- `aio_aws.model.json` with `order = true`), else sorted.
--
-- Errors: both are misuse of the expression, so they raise an
-- `aio_aws.errors` object with code "JMESPathError" and `kind` one of
-- "syntax", "invalid-type", "invalid-value", "invalid-arity",
-- "unknown-function" (the compliance suite's error names): a malformed
-- expression (at compile time) and a function called with the wrong types.
-- Compiled expressions are cached (bounded).
local errors = require "aio_aws.errors"
local json = require "aio_aws.model.json"

local ok_cjson, cjson = pcall(require, "cjson")

local M = {}

local NULL = json.null
M.null = NULL
local ORDER = json.ORDER

--- Metatable marking arrays built here (cjson's when it has one).
M.array_mt = (ok_cjson and cjson.array_mt) or json.array_mt
local ARRAY_MT = M.array_mt
local ARRAY_MTS = { [ARRAY_MT] = true, [json.array_mt] = true }
if ok_cjson and cjson.empty_array_mt then ARRAY_MTS[cjson.empty_array_mt] = true end

-- object -> list of its keys in insertion order, for objects built here
local order_of = setmetatable({}, { __mode = "k" })

local type, pairs, ipairs, next, getmetatable, setmetatable = type, pairs, ipairs, next, getmetatable, setmetatable
local byte, sub, format, concat = string.byte, string.sub, string.format, table.concat
local tointeger, mtype = math.tointeger, math.type

local function raise(kind, msg)
  error(errors.new("JMESPathError", msg, { kind = kind }), 0)
end

-- --------------------------------------------------------------- values

local function norm(v)
  if v == NULL then return nil end
  return v
end

local function new_array()
  return setmetatable({}, ARRAY_MT)
end

local function is_array(v)
  if type(v) ~= "table" then return false end
  if order_of[v] or rawget(v, ORDER) then return false end -- a known object, even empty
  local mt = getmetatable(v)
  if mt and ARRAY_MTS[mt] then return true end
  if v[1] ~= nil then return true end
  if mt then return false end
  return next(v) == nil
end

local function is_object(v)
  if type(v) ~= "table" then return false end
  if order_of[v] or rawget(v, ORDER) then return true end
  local mt = getmetatable(v)
  if mt and ARRAY_MTS[mt] then return false end
  if v[1] ~= nil then return false end
  return true
end

-- The keys of an object, in its known order.
local function obj_keys(t)
  local ord = order_of[t] or rawget(t, ORDER)
  local out = {}
  if ord then
    for _, k in ipairs(ord) do
      if t[k] ~= nil then out[#out + 1] = k end
    end
    return out
  end
  for k in pairs(t) do
    if type(k) == "string" then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end
M.keys = obj_keys

local function is_empty(t)
  local k = next(t)
  if k == nil then return true end
  if k == ORDER then return next(t, k) == nil end
  return false
end

--- An object whose keys keep the given order: `M.object{{"a", 1}, {"b", 2}}`.
function M.object(list)
  local t, ord = {}, {}
  for i, p in ipairs(list) do
    t[p[1]] = p[2] == nil and NULL or p[2]
    ord[i] = p[1]
  end
  order_of[t] = ord
  return t
end

local function kind(v)
  if v == nil or v == NULL then return "null" end
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" then return t end
  if t == "table" then
    if getmetatable(v) == M.Expression then return "expref" end
    if is_array(v) then return "array" end
    return "object"
  end
  return "unknown"
end
M.type = kind

local function truthy(v)
  if v == nil or v == NULL or v == false or v == "" then return false end
  if type(v) == "table" and getmetatable(v) ~= M.Expression and is_empty(v) then return false end
  return true
end
M.truthy = truthy

local function equals(a, b)
  a, b = norm(a), norm(b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  if is_array(a) and is_array(b) then
    if #a ~= #b then return false end
    for i = 1, #a do
      if not equals(a[i], b[i]) then return false end
    end
    return true
  end
  if is_object(a) and is_object(b) then
    for k, v in pairs(a) do
      if k ~= ORDER and not equals(v, b[k]) then return false end
    end
    for k, v in pairs(b) do
      if k ~= ORDER and norm(v) ~= nil and a[k] == nil then return false end
    end
    return true
  end
  return false
end
M.equals = equals

-- --------------------------------------------------------------- Python-style JSON

-- Python's repr of a float (shortest round trip; exponent form below 1e-4
-- and from 1e16), as json.dumps writes it.
local function py_float(v)
  if v ~= v then return "NaN" end
  if v == math.huge then return "Infinity" end
  if v == -math.huge then return "-Infinity" end
  local s
  for p = 1, 17 do
    s = format("%." .. p .. "e", v)
    if tonumber(s) == v then break end
  end
  local sign, d1, ds, ex = s:match("^(-?)(%d)%.?(%d*)e([-+]%d+)$")
  local digits = (d1 .. ds):gsub("0+$", "")
  if digits == "" then digits = "0" end
  local e = tonumber(ex)
  if e < -4 or e >= 16 then
    local m = digits:sub(1, 1)
    if #digits > 1 then m = m .. "." .. digits:sub(2) end
    return format("%s%se%s%02d", sign, m, e < 0 and "-" or "+", math.abs(e))
  end
  if e < 0 then
    return sign .. "0." .. string.rep("0", -e - 1) .. digits
  end
  if #digits <= e + 1 then
    return sign .. digits .. string.rep("0", e + 1 - #digits) .. ".0"
  end
  return sign .. digits:sub(1, e + 1) .. "." .. digits:sub(e + 2)
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
  ["\b"] = "\\b", ["\f"] = "\\f" }

-- json.dumps's default ensure_ascii: everything outside ASCII as \uXXXX.
local function py_string(s)
  local out = { '"' }
  for _, c in utf8.codes(s, true) do
    local ch = c < 128 and string.char(c) or nil
    if ch and ESCAPES[ch] then
      out[#out + 1] = ESCAPES[ch]
    elseif c < 32 then
      out[#out + 1] = format("\\u%04x", c)
    elseif c < 128 then
      out[#out + 1] = ch
    elseif c < 0x10000 then
      out[#out + 1] = format("\\u%04x", c)
    else
      c = c - 0x10000
      out[#out + 1] = format("\\u%04x\\u%04x", 0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF))
    end
  end
  out[#out + 1] = '"'
  return concat(out)
end

--- Encode like Python's `json.dumps(v)` (`compact`: `separators=(',', ':')`),
-- which botocore uses for pagination tokens and POST policies and
-- jmespath.py for `to_string`. Strings must be UTF-8.
function M.py_dumps(v, compact)
  local comma, colon = compact and "," or ", ", compact and ":" or ": "
  local function enc(x)
    x = norm(x)
    if x == nil then return "null" end
    local t = type(x)
    if t == "boolean" then return x and "true" or "false" end
    if t == "number" then
      if mtype(x) == "integer" then return tostring(x) end
      return py_float(x)
    end
    if t == "string" then
      if not utf8.len(x) then raise("invalid-value", "cannot encode a string that is not UTF-8") end
      return py_string(x)
    end
    if t == "table" then
      local parts = {}
      if is_array(x) then
        for i = 1, #x do parts[i] = enc(x[i]) end
        return "[" .. concat(parts, comma) .. "]"
      end
      for i, k in ipairs(obj_keys(x)) do parts[i] = py_string(k) .. colon .. enc(x[k]) end
      return "{" .. concat(parts, comma) .. "}"
    end
    raise("invalid-type", "cannot encode a " .. t)
  end
  return enc(v)
end

-- Decode JSON keeping object order (in `order_of`, not in the object).
local function move_order(v)
  if type(v) ~= "table" then return v end
  local ord = rawget(v, ORDER)
  if ord then
    v[ORDER] = nil
    order_of[v] = ord
  end
  for _, x in pairs(v) do move_order(x) end
  return v
end

--- Decode JSON text (object key order kept); nil, message when invalid.
function M.json_decode(s)
  local v, err = json.decode(s, { order = true })
  if err then return nil, err end
  return move_order(v)
end

-- --------------------------------------------------------------- lexer

local SIMPLE = {
  ["."] = "dot", ["*"] = "star", ["]"] = "rbracket", [","] = "comma", [":"] = "colon",
  ["@"] = "current", ["("] = "lparen", [")"] = "rparen", ["{"] = "lbrace", ["}"] = "rbrace",
}

local function is_ident_start(c) return c and (c == 95 or (c >= 65 and c <= 90) or (c >= 97 and c <= 122)) end
local function is_ident(c) return c and (is_ident_start(c) or (c >= 48 and c <= 57)) end
local function is_digit(c) return c and c >= 48 and c <= 57 end

local function lex_error(expr, pos, msg)
  raise("syntax", format("%s in %q at position %d", msg, expr, pos - 1))
end

-- Text up to the closing delimiter; a backslash keeps the next character
-- (jmespath.py Lexer._consume_until). Returns text and the position after.
local function consume_until(expr, pos, delim)
  local start, buf, i, n = pos, {}, pos + 1, #expr
  while true do
    if i > n then lex_error(expr, start, "unclosed " .. delim .. " delimiter") end
    local c = sub(expr, i, i)
    if c == "\\" then
      -- the escaped character is kept, even the delimiter
      buf[#buf + 1] = "\\"
      i = i + 1
      if i > n then lex_error(expr, start, "unclosed " .. delim .. " delimiter") end
      c = sub(expr, i, i)
    elseif c == delim then
      break
    end
    buf[#buf + 1] = c
    i = i + 1
  end
  return concat(buf), i + 1
end

local function tokenize(expr)
  if expr == "" then raise("syntax", "empty expression") end
  local toks, pos, n = {}, 1, #expr
  local function push(ty, value, start) toks[#toks + 1] = { type = ty, value = value, start = start } end
  while pos <= n do
    local ch = sub(expr, pos, pos)
    local c = byte(ch)
    if SIMPLE[ch] then
      push(SIMPLE[ch], ch, pos)
      pos = pos + 1
    elseif is_ident_start(c) then
      local s = pos
      while is_ident(byte(expr, pos + 1)) do pos = pos + 1 end
      push("unquoted_identifier", sub(expr, s, pos), s)
      pos = pos + 1
    elseif ch == " " or ch == "\t" or ch == "\n" or ch == "\r" then
      pos = pos + 1
    elseif ch == "[" then
      local nx = sub(expr, pos + 1, pos + 1)
      if nx == "]" then push("flatten", "[]", pos); pos = pos + 2
      elseif nx == "?" then push("filter", "[?", pos); pos = pos + 2
      else push("lbracket", "[", pos); pos = pos + 1 end
    elseif ch == "'" then
      local s = pos
      local text
      text, pos = consume_until(expr, pos, "'")
      push("literal", (text:gsub("\\'", "'")), s)
    elseif ch == "`" then
      local s = pos
      local text
      text, pos = consume_until(expr, pos, "`")
      text = text:gsub("\\`", "`")
      local v, err = M.json_decode(text)
      if err then
        -- jmespath.py's deprecated form: `foo` is the string "foo"
        v, err = M.json_decode('"' .. text:gsub("^%s+", "") .. '"')
        if err then lex_error(expr, s, "bad JSON literal " .. text) end
      end
      push("literal", v, s)
    elseif ch == "|" or ch == "&" or ch == "<" or ch == ">" or ch == "!" then
      local two = sub(expr, pos, pos + 1)
      local dbl = { ["||"] = "or", ["&&"] = "and", ["<="] = "lte", [">="] = "gte", ["!="] = "ne" }
      local one = { ["|"] = "pipe", ["&"] = "expref", ["<"] = "lt", [">"] = "gt", ["!"] = "not" }
      if dbl[two] then push(dbl[two], two, pos); pos = pos + 2
      else push(one[ch], ch, pos); pos = pos + 1 end
    elseif is_digit(c) or ch == "-" then
      local s = pos
      while is_digit(byte(expr, pos + 1)) do pos = pos + 1 end
      local text = sub(expr, s, pos)
      if text == "-" then lex_error(expr, s, "unknown token '-'") end
      local v = tointeger(tonumber(text))
      if not v then lex_error(expr, s, "number out of range " .. text) end
      push("number", v, s)
      pos = pos + 1
    elseif ch == '"' then
      local s = pos
      local text
      text, pos = consume_until(expr, pos, '"')
      local v, err = json.decode('"' .. text .. '"')
      if err or type(v) ~= "string" then lex_error(expr, s, "invalid quoted identifier") end
      push("quoted_identifier", v, s)
    elseif ch == "=" then
      if sub(expr, pos + 1, pos + 1) == "=" then push("eq", "==", pos); pos = pos + 2
      else lex_error(expr, pos, "unknown token '='") end
    else
      lex_error(expr, pos, "unknown token " .. ch)
    end
  end
  push("eof", "", n + 1)
  return toks
end

-- --------------------------------------------------------------- parser

local BP = {
  eof = 0, unquoted_identifier = 0, quoted_identifier = 0, literal = 0, rbracket = 0,
  rparen = 0, comma = 0, rbrace = 0, number = 0, current = 0, expref = 0, colon = 0,
  pipe = 1, ["or"] = 2, ["and"] = 3, eq = 5, gt = 5, lt = 5, gte = 5, lte = 5, ne = 5,
  flatten = 9, star = 20, filter = 21, dot = 40, ["not"] = 45, lbrace = 50, lbracket = 55, lparen = 60,
}
local PROJECTION_STOP = 10

local function node(ty, children, value) return { type = ty, children = children or {}, value = value } end
local IDENTITY = node("identity")

local Parser = {}
Parser.__index = Parser

function Parser:cur() return self.toks[self.i].type end
function Parser:look(k) local t = self.toks[self.i + k] return t and t.type or "eof" end
function Parser:tok(k) return self.toks[self.i + (k or 0)] end
function Parser:advance() self.i = self.i + 1 end

function Parser:fail(t, why)
  if t.type == "eof" then
    raise("syntax", format("incomplete expression %q", self.expr))
  end
  raise("syntax", format("%s in %q at position %d (token %s %q)", why, self.expr, t.start - 1,
    t.type, tostring(t.value)))
end

function Parser:match(ty)
  if self:cur() == ty then self:advance() return end
  self:fail(self:tok(), "expected " .. ty .. ", got " .. self:cur())
end

function Parser:expression(rbp)
  rbp = rbp or 0
  local left_tok = self:tok()
  self:advance()
  local nud = self["nud_" .. left_tok.type]
  if not nud then self:fail(left_tok, "invalid token") end
  local left = nud(self, left_tok)
  local cur = self:cur()
  while rbp < BP[cur] do
    local led = self["led_" .. cur]
    if not led then self:fail(self:tok(), "invalid token") end
    self:advance()
    left = led(self, left)
    cur = self:cur()
  end
  return left
end

function Parser:nud_literal(t) return node("literal", nil, t.value) end
function Parser:nud_unquoted_identifier(t) return node("field", nil, t.value) end
function Parser:nud_quoted_identifier(t)
  if self:cur() == "lparen" then self:fail(self:tok(), "quoted identifier not allowed for function names") end
  return node("field", nil, t.value)
end
function Parser:nud_star()
  local right
  if self:cur() == "rbracket" then right = IDENTITY else right = self:projection_rhs(BP.star) end
  return node("value_projection", { IDENTITY, right })
end
function Parser:nud_filter() return self:led_filter(IDENTITY) end
function Parser:nud_lbrace() return self:multi_select_hash() end
function Parser:nud_lparen()
  local e = self:expression()
  self:match("rparen")
  return e
end
function Parser:nud_flatten()
  return node("projection", { node("flatten", { IDENTITY }), self:projection_rhs(BP.flatten) })
end
Parser["nud_not"] = function(self)
  return node("not_expression", { self:expression(BP["not"]) })
end
function Parser:nud_lbracket()
  local cur = self:cur()
  if cur == "number" or cur == "colon" then
    return self:project_if_slice(IDENTITY, self:index_expression())
  elseif cur == "star" and self:look(1) == "rbracket" then
    self:advance()
    self:advance()
    return node("projection", { IDENTITY, self:projection_rhs(BP.star) })
  end
  return self:multi_select_list()
end
function Parser:nud_current() return node("current") end
function Parser:nud_expref() return node("expref", { self:expression(BP.expref) }) end

function Parser:index_expression()
  if self:look(0) == "colon" or self:look(1) == "colon" then return self:slice_expression() end
  local n = node("index", nil, self:tok().value)
  self:advance()
  self:match("rbracket")
  return n
end

function Parser:slice_expression()
  local parts, idx = {}, 1
  local cur = self:cur()
  while cur ~= "rbracket" and idx <= 3 do
    if cur == "colon" then
      idx = idx + 1
      if idx == 4 then self:fail(self:tok(), "syntax error") end
      self:advance()
    elseif cur == "number" then
      parts[idx] = self:tok().value
      self:advance()
    else
      self:fail(self:tok(), "syntax error")
    end
    cur = self:cur()
  end
  self:match("rbracket")
  return { type = "slice", children = {}, start = parts[1], stop = parts[2], step = parts[3] }
end

function Parser:project_if_slice(left, right)
  local ie = node("index_expression", { left, right })
  if right.type == "slice" then
    return node("projection", { ie, self:projection_rhs(BP.star) })
  end
  return ie
end

function Parser:led_dot(left)
  if self:cur() ~= "star" then
    local right = self:dot_rhs(BP.dot)
    if left.type == "subexpression" then
      local ch = left.children
      ch[#ch + 1] = right
      return left
    end
    return node("subexpression", { left, right })
  end
  self:advance()
  return node("value_projection", { left, self:projection_rhs(BP.dot) })
end
function Parser:led_pipe(left) return node("pipe", { left, self:expression(BP.pipe) }) end
Parser["led_or"] = function(self, left) return node("or_expression", { left, self:expression(BP["or"]) }) end
Parser["led_and"] = function(self, left) return node("and_expression", { left, self:expression(BP["and"]) }) end
function Parser:led_lparen(left)
  if left.type ~= "field" then self:fail(self:tok(-2), "invalid function name") end
  local args = {}
  while self:cur() ~= "rparen" do
    local e = self:expression()
    if self:cur() == "comma" then self:match("comma") end
    args[#args + 1] = e
  end
  self:match("rparen")
  return node("function_expression", args, left.value)
end
function Parser:led_filter(left)
  local cond = self:expression(0)
  self:match("rbracket")
  local right
  if self:cur() == "flatten" then right = IDENTITY else right = self:projection_rhs(BP.filter) end
  return node("filter_projection", { left, right, cond })
end
for _, op in ipairs({ "eq", "ne", "gt", "gte", "lt", "lte" }) do
  Parser["led_" .. op] = function(self, left)
    return node("comparator", { left, self:expression(BP[op]) }, op)
  end
end
function Parser:led_flatten(left)
  return node("projection", { node("flatten", { left }), self:projection_rhs(BP.flatten) })
end
function Parser:led_lbracket(left)
  local ty = self:cur()
  if ty == "number" or ty == "colon" then
    local right = self:index_expression()
    if left.type == "index_expression" then
      local ch = left.children
      ch[#ch + 1] = right
      return left
    end
    return self:project_if_slice(left, right)
  end
  self:match("star")
  self:match("rbracket")
  return node("projection", { left, self:projection_rhs(BP.star) })
end

function Parser:multi_select_list()
  local exprs = {}
  while true do
    exprs[#exprs + 1] = self:expression()
    if self:cur() == "rbracket" then break end
    self:match("comma")
  end
  self:match("rbracket")
  return node("multi_select_list", exprs)
end

function Parser:multi_select_hash()
  local pairs_ = {}
  while true do
    local key = self:tok()
    if key.type ~= "quoted_identifier" and key.type ~= "unquoted_identifier" then
      self:fail(key, "expected an identifier")
    end
    self:advance()
    self:match("colon")
    pairs_[#pairs_ + 1] = node("key_val_pair", { self:expression(0) }, key.value)
    if self:cur() == "comma" then
      self:match("comma")
    elseif self:cur() == "rbrace" then
      self:match("rbrace")
      break
    end
  end
  return node("multi_select_dict", pairs_)
end

function Parser:projection_rhs(rbp)
  local cur = self:cur()
  if BP[cur] < PROJECTION_STOP then return IDENTITY end
  if cur == "lbracket" or cur == "filter" then return self:expression(rbp) end
  if cur == "dot" then
    self:match("dot")
    return self:dot_rhs(rbp)
  end
  self:fail(self:tok(), "syntax error")
end

function Parser:dot_rhs(rbp)
  local cur = self:cur()
  if cur == "quoted_identifier" or cur == "unquoted_identifier" or cur == "star" then
    return self:expression(rbp)
  elseif cur == "lbracket" then
    self:match("lbracket")
    return self:multi_select_list()
  elseif cur == "lbrace" then
    self:match("lbrace")
    return self:multi_select_hash()
  end
  self:fail(self:tok(), "expected an identifier, '[' or '{' after '.'")
end

local function parse(expr)
  local p = setmetatable({ expr = expr, toks = tokenize(expr), i = 1 }, Parser)
  local ast = p:expression(0)
  if p:cur() ~= "eof" then p:fail(p:tok(), "unexpected token") end
  return ast
end

-- --------------------------------------------------------------- interpreter

local visit -- forward

local Expression = { __name = "aio_aws.jmespath.expref" }
M.Expression = Expression

local function push(arr, v)
  arr[#arr + 1] = v == nil and NULL or v
end

local function slice(list, start, stop, step)
  -- Python slice semantics (slice.indices)
  local n = #list
  step = step or 1
  if step == 0 then raise("invalid-value", "slice step cannot be 0") end
  local function adjust(v, default_pos, default_neg)
    if v == nil then return step > 0 and default_pos or default_neg end
    if v < 0 then
      v = v + n
      if v < 0 then v = step < 0 and -1 or 0 end
    elseif v >= n then
      v = step < 0 and n - 1 or n
    end
    return v
  end
  local a = adjust(start, 0, n - 1)
  local b = adjust(stop, n, -1)
  local out = new_array()
  if step > 0 then
    local i = a
    while i < b do out[#out + 1] = list[i + 1]; i = i + step end
  else
    local i = a
    while i > b do out[#out + 1] = list[i + 1]; i = i + step end
  end
  return out
end

local function comparable(v) return type(v) == "number" or type(v) == "string" end

local COMPARE = {
  lt = function(a, b) return a < b end, gt = function(a, b) return a > b end,
  lte = function(a, b) return a <= b end, gte = function(a, b) return a >= b end,
}

local FUNCTIONS -- forward

local V = {}

function V.subexpression(n, value)
  for _, c in ipairs(n.children) do value = visit(c, value) end
  return value
end
V.index_expression = V.subexpression
V.pipe = V.subexpression

function V.field(n, value)
  if type(value) ~= "table" or not is_object(value) then return nil end
  if getmetatable(value) == Expression then return nil end
  return norm(value[n.value])
end

function V.comparator(n, value)
  local a, b = norm(visit(n.children[1], value)), norm(visit(n.children[2], value))
  local op = n.value
  if op == "eq" then return equals(a, b) end
  if op == "ne" then return not equals(a, b) end
  if not (comparable(a) and comparable(b)) or type(a) ~= type(b) then return nil end
  return COMPARE[op](a, b)
end

function V.current(_, value) return value end
V.identity = V.current

function V.expref(n)
  return setmetatable({ node = n.children[1] }, Expression)
end

function V.function_expression(n, value)
  local f = FUNCTIONS[n.value]
  if not f then raise("unknown-function", "unknown function: " .. tostring(n.value) .. "()") end
  local args = {}
  for i, c in ipairs(n.children) do args[i] = norm(visit(c, value)) end
  return f(args, #n.children)
end

function V.filter_projection(n, value)
  local base = visit(n.children[1], value)
  if not is_array(base) then return nil end
  local out = new_array()
  for i = 1, #base do
    local el = norm(base[i])
    if truthy(visit(n.children[3], el)) then
      local cur = visit(n.children[2], el)
      if norm(cur) ~= nil then out[#out + 1] = cur end
    end
  end
  return out
end

function V.flatten(n, value)
  local base = visit(n.children[1], value)
  if not is_array(base) then return nil end
  local out = new_array()
  for i = 1, #base do
    local el = base[i]
    if el ~= NULL and is_array(el) then
      for j = 1, #el do out[#out + 1] = el[j] end
    else
      out[#out + 1] = el
    end
  end
  return out
end

function V.index(n, value)
  if not is_array(value) then return nil end
  local i = n.value
  local len = #value
  if i < 0 then i = len + i end
  if i < 0 or i >= len then return nil end
  return norm(value[i + 1])
end

function V.slice(n, value)
  if not is_array(value) then return nil end
  return slice(value, n.start, n.stop, n.step)
end

function V.literal(n) return n.value end

function V.key_val_pair(n, value) return visit(n.children[1], value) end

function V.multi_select_dict(n, value)
  if value == nil then return nil end
  local list = {}
  for i, c in ipairs(n.children) do list[i] = { c.value, norm(visit(c, value)) } end
  return M.object(list)
end

function V.multi_select_list(n, value)
  if value == nil then return nil end
  local out = new_array()
  for _, c in ipairs(n.children) do push(out, norm(visit(c, value))) end
  return out
end

function V.or_expression(n, value)
  local v = visit(n.children[1], value)
  if not truthy(v) then v = visit(n.children[2], value) end
  return v
end

function V.and_expression(n, value)
  local v = visit(n.children[1], value)
  if not truthy(v) then return v end
  return visit(n.children[2], value)
end

function V.not_expression(n, value)
  return not truthy(visit(n.children[1], value))
end

function V.projection(n, value)
  local base = visit(n.children[1], value)
  if not is_array(base) then return nil end
  local out = new_array()
  for i = 1, #base do
    local cur = visit(n.children[2], norm(base[i]))
    if norm(cur) ~= nil then out[#out + 1] = cur end
  end
  return out
end

function V.value_projection(n, value)
  local base = visit(n.children[1], value)
  if not is_object(base) or getmetatable(base) == Expression then return nil end
  local out = new_array()
  for _, k in ipairs(obj_keys(base)) do
    local cur = visit(n.children[2], norm(base[k]))
    if norm(cur) ~= nil then out[#out + 1] = cur end
  end
  return out
end

function visit(n, value)
  return V[n.type](n, norm(value))
end

-- --------------------------------------------------------------- functions

local function type_error(fname, v, want)
  raise("invalid-type", format("in function %s(): invalid type for value %s, expected one of %s, received %q",
    fname, kind(v) == "string" and format("%q", v) or kind(v), want, kind(v)))
end

-- argument checks: spec is a list of allowed kinds per argument
-- ("array-number" = an array of numbers, "array-string" likewise)
local function check(fname, args, nargs, specs, variadic)
  if variadic then
    if nargs < #specs then
      raise("invalid-arity", format("function %s() expects at least %d arguments, received %d", fname, #specs, nargs))
    end
  elseif nargs ~= #specs then
    raise("invalid-arity", format("function %s() expects %d arguments, received %d", fname, #specs, nargs))
  end
  for i, allowed in ipairs(specs) do
    if allowed ~= "any" then
      local v = args[i]
      local k = kind(v)
      local ok = false
      for want in allowed:gmatch("[^|]+") do
        local base, sub_ = want:match("^(%a+)%-(%a+)$")
        if base then
          if k == "array" then
            local first = #v > 0 and kind(v[1]) or nil
            local all = true
            for j = 1, #v do
              local kj = kind(v[j])
              if kj ~= sub_ or (first and kj ~= first) then all = false break end
            end
            if all then ok = true break end
          end
        elseif k == want then
          ok = true
          break
        end
      end
      if not ok then type_error(fname, v, allowed) end
    end
  end
end

local function key_func(fname, expref, allowed)
  return function(x)
    local r = norm(visit(expref.node, x))
    local k = kind(r)
    if not allowed[k] then type_error(fname, r, "number|string") end
    return r, k
  end
end

FUNCTIONS = {}
local function def(name, specs, body, variadic)
  FUNCTIONS[name] = function(args, nargs)
    check(name, args, nargs, specs, variadic)
    return body(args, nargs)
  end
end
def("abs", { "number" }, function(a) return math.abs(a[1]) end)
def("avg", { "array-number" }, function(a)
  local t = a[1]
  if #t == 0 then return nil end
  local s = 0
  for i = 1, #t do s = s + t[i] end
  return s / #t
end)
def("ceil", { "number" }, function(a) return math.ceil(a[1]) end)
def("floor", { "number" }, function(a) return math.floor(a[1]) end)
def("contains", { "array|string", "any" }, function(a)
  local subject, search = a[1], a[2]
  if type(subject) == "string" then
    if type(search) ~= "string" then return false end
    return string.find(subject, search, 1, true) ~= nil
  end
  for i = 1, #subject do
    if equals(subject[i], search) then return true end
  end
  return false
end)
def("ends_with", { "string", "string" }, function(a)
  local s, suffix = a[1], a[2]
  return suffix == "" or sub(s, -#suffix) == suffix
end)
def("starts_with", { "string", "string" }, function(a)
  return sub(a[1], 1, #a[2]) == a[2]
end)
def("join", { "string", "array-string" }, function(a)
  local parts = {}
  for i = 1, #a[2] do parts[i] = a[2][i] end
  return concat(parts, a[1])
end)
def("keys", { "object" }, function(a)
  local out = new_array()
  for i, k in ipairs(obj_keys(a[1])) do out[i] = k end
  return out
end)
def("values", { "object" }, function(a)
  local out = new_array()
  for _, k in ipairs(obj_keys(a[1])) do push(out, a[1][k]) end
  return out
end)
def("length", { "string|array|object" }, function(a)
  local v = a[1]
  if type(v) == "string" then return utf8.len(v) or #v end
  if is_array(v) then return #v end
  return #obj_keys(v)
end)
def("map", { "expref", "array" }, function(a)
  local out = new_array()
  for i = 1, #a[2] do push(out, norm(visit(a[1].node, norm(a[2][i])))) end
  return out
end)
local function extreme(a, better)
  local t = a[1]
  if #t == 0 then return nil end
  local best = t[1]
  for i = 2, #t do
    if better(t[i], best) then best = t[i] end
  end
  return best
end
def("max", { "array-number|array-string" }, function(a) return extreme(a, function(x, y) return x > y end) end)
def("min", { "array-number|array-string" }, function(a) return extreme(a, function(x, y) return x < y end) end)
local function extreme_by(name, a, better)
  local list, expref = a[1], a[2]
  if #list == 0 then return nil end
  local key = key_func(name, expref, { number = true, string = true })
  local best, bestk = norm(list[1]), key(norm(list[1]))
  for i = 2, #list do
    local el = norm(list[i])
    local k = key(el)
    if type(k) ~= type(bestk) then type_error(name, k, kind(bestk)) end
    if better(k, bestk) then best, bestk = el, k end
  end
  return best
end
def("max_by", { "array", "expref" }, function(a) return extreme_by("max_by", a, function(x, y) return x > y end) end)
def("min_by", { "array", "expref" }, function(a) return extreme_by("min_by", a, function(x, y) return x < y end) end)
def("merge", { "object" }, function(a, nargs)
  local list, idx = {}, {}
  for i = 1, nargs do
    local o = a[i]
    if kind(o) ~= "object" and not (is_array(o) and is_empty(o) and getmetatable(o) == nil) then
      type_error("merge", o, "object")
    end
    for _, k in ipairs(obj_keys(o)) do
      if idx[k] then list[idx[k]][2] = o[k]
      else list[#list + 1] = { k, o[k] }; idx[k] = #list end
    end
  end
  return M.object(list)
end, true)
def("not_null", { "any" }, function(a, nargs)
  for i = 1, nargs do
    if norm(a[i]) ~= nil then return a[i] end
  end
  return nil
end, true)
def("reverse", { "array|string" }, function(a)
  local v = a[1]
  if type(v) == "string" then
    local cps = {}
    for _, c in utf8.codes(v) do table.insert(cps, 1, utf8.char(c)) end
    return concat(cps)
  end
  local out = new_array()
  for i = #v, 1, -1 do out[#out + 1] = v[i] end
  return out
end)
def("sort", { "array-string|array-number" }, function(a)
  local out = new_array()
  for i = 1, #a[1] do out[i] = a[1][i] end
  table.sort(out)
  return out
end)
def("sort_by", { "array", "expref" }, function(a)
  local list, expref = a[1], a[2]
  local out = new_array()
  if #list == 0 then return list end
  local first = norm(visit(expref.node, norm(list[1])))
  local fk = kind(first)
  if fk ~= "number" and fk ~= "string" then type_error("sort_by", first, "number|string") end
  local key = key_func("sort_by", expref, { [fk] = true })
  local dec = {}
  for i = 1, #list do dec[i] = { key(norm(list[i])), i, list[i] } end
  table.sort(dec, function(x, y)
    if x[1] ~= y[1] then return x[1] < y[1] end
    return x[2] < y[2] -- stable, as Python's sorted
  end)
  for i, d in ipairs(dec) do out[i] = d[3] end
  return out
end)
def("sum", { "array-number" }, function(a)
  local s = 0
  for i = 1, #a[1] do s = s + a[1][i] end
  return s
end)
def("to_array", { "any" }, function(a)
  if is_array(a[1]) then return a[1] end
  local out = new_array()
  push(out, a[1])
  return out
end)
def("to_string", { "any" }, function(a)
  if type(a[1]) == "string" then return a[1] end
  return M.py_dumps(a[1], true)
end)
def("to_number", { "any" }, function(a)
  local v = a[1]
  if type(v) == "number" then return v end
  if type(v) ~= "string" then return nil end
  -- Python's int() then float(): surrounding whitespace allowed, no hex
  local s = v:match("^%s*(.-)%s*$")
  if s:match("^[-+]?%d+$") then return tointeger(tonumber(s)) or tonumber(s) end
  if s:match("^[-+]?%d*%.?%d*[eE]?[-+]?%d*$") and s:match("%d") then
    local n = tonumber(s)
    if n then return n end
  end
  local low = s:lower()
  if low == "nan" or low == "+nan" or low == "-nan" then return 0 / 0 end
  if low == "inf" or low == "+inf" or low == "infinity" or low == "+infinity" then return math.huge end
  if low == "-inf" or low == "-infinity" then return -math.huge end
  return nil
end)
def("type", { "any" }, function(a) return kind(a[1]) end)

-- --------------------------------------------------------------- API

local Compiled = {}
Compiled.__index = Compiled
Compiled.__name = "aio_aws.jmespath.Compiled"
function Compiled.__tostring(c) return "jmespath(" .. c.expression .. ")" end

--- Evaluate against `data`; a null result is `nil`.
function Compiled:search(data)
  return norm(visit(self.ast, data))
end

local cache, cache_n, CACHE_MAX = {}, 0, 512

--- Compile (and cache) an expression; raises a JMESPathError (kind
-- "syntax") when it is malformed.
function M.compile(expr)
  if type(expr) ~= "string" then error("jmespath.compile: expression must be a string", 2) end
  local hit = cache[expr]
  if hit then return hit end
  local c = setmetatable({ expression = expr, ast = parse(expr) }, Compiled)
  if cache_n >= CACHE_MAX then cache, cache_n = {}, 0 end
  cache[expr] = c
  cache_n = cache_n + 1
  return c
end

--- `compile(expr):search(data)`.
function M.search(expr, data)
  return M.compile(expr):search(data)
end

return M
