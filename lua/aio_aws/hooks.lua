--- Event hooks of a client (botocore's event system, reduced to the
-- events users hook into):
--
--     local h = s3:on("before_send", function(request, ctx) ... end, "PutObject")
--     h:remove()
--
-- Events, in the order a call meets them (`ctx` = {operation, client,
-- params, attempt}):
--
-- * `before_parameter_build(params, ctx)`: once per call, after
--   validation; may change `params` in place or return a new table.
-- * `before_sign(request, ctx)`: every attempt; `request` = {method, url,
--   headers (lower-case names), body}; may change it in place.
-- * `before_send(request, ctx)`: every attempt, signed; a hook returning a
--   response `{status, headers, body}` short-circuits the network (later
--   hooks do not run), as botocore's emit_until_response.
-- * `after_call(output, ctx)`: the parsed result of a successful call.
-- * `after_call_error(err, ctx)`: the error a call returns.
--
-- Filters: an operation name ("PutObject" or "put_object"), a list of
-- them, or "*" / nil for every operation. Hooks run in the calling task
-- (they may wait) in registration order. A hook that raises makes the
-- call raise a `HookError` (fields `event`, `hook` = "file:line" of the
-- function, `operation`, `cause`); the call's resources are released
-- first.
local errors = require "aio_aws.errors"

local M = {}

M.EVENTS = {
  before_parameter_build = true, before_sign = true, before_send = true,
  after_call = true, after_call_error = true,
}

local Handle = {}
Handle.__index = Handle
Handle.__name = "aio_aws.HookHandle"

--- Unregister the hook. Idempotent.
function Handle:remove()
  local reg, entry = self._reg, self._entry
  if not reg then return end
  self._reg = nil
  local old = reg[entry.event]
  local list = {}
  for _, e in ipairs(old or {}) do
    if e ~= entry then list[#list + 1] = e end
  end
  -- a new list: an emit in progress keeps iterating its own snapshot
  reg[entry.event] = #list > 0 and list or nil
end

function Handle:__tostring()
  return ("aio_aws.HookHandle(%s, %s)"):format(self._entry.event, self._entry.name)
end

local function hook_name(fn)
  local info = debug.getinfo(fn, "S")
  return ("%s:%d"):format(info.short_src, info.linedefined)
end

--- Register `fn` for `event` in the registry `reg` (a table owned by the
-- client). `resolve(name)` maps an operation or method name to the
-- operation's model name, or nil when unknown.
function M.add(reg, event, fn, filter, resolve, level)
  level = (level or 1) + 1
  if type(event) ~= "string" or not M.EVENTS[event] then
    error("on: unknown event " .. tostring(event) ..
      " (before_parameter_build, before_sign, before_send, after_call, after_call_error)", level)
  end
  if type(fn) ~= "function" then error("on: the hook must be a function", level) end
  local ops
  if filter ~= nil and filter ~= "*" then
    local names = filter
    if type(filter) == "string" then names = { filter } end
    if type(names) ~= "table" or #names == 0 then
      error("on: the operation filter must be a name, a list of names or \"*\"", level)
    end
    ops = {}
    for _, n in ipairs(names) do
      local op = type(n) == "string" and resolve(n)
      if not op then error("on: unknown operation " .. tostring(n), level) end
      ops[op] = true
    end
  end
  local entry = { event = event, fn = fn, ops = ops, name = hook_name(fn) }
  local list = {}
  for i, e in ipairs(reg[event] or {}) do list[i] = e end
  list[#list + 1] = entry
  reg[event] = list
  return setmetatable({ _reg = reg, _entry = entry }, Handle)
end

local function raise(entry, op, e)
  error(errors.new("HookError",
    ("%s hook %s failed for %s: %s"):format(entry.event, entry.name, op, tostring(e)),
    { event = entry.event, hook = entry.name, operation = op, cause = e }), 0)
end

--- Run the hooks of `event` for operation `op` with (`payload`, `ctx`).
-- `until_response`: stop at the first hook returning non-nil and return
-- that value. Otherwise a returned table replaces the payload for the
-- next hooks, and the final payload is returned.
function M.emit(list, op, payload, ctx, until_response)
  for i = 1, #list do
    local entry = list[i]
    if not entry.ops or entry.ops[op] then
      local ok, r = pcall(entry.fn, payload, ctx)
      if not ok then raise(entry, op, r) end
      if until_response then
        if r ~= nil then return r end
      elseif type(r) == "table" then
        payload = r
      end
    end
  end
  if until_response then return nil end
  return payload
end

return M
