--- Error objects shared by every layer.
-- Runtime failures (network, AWS, files) are returned as `nil, err` where
-- `err` is one of these tables: `code` (stable string such as "Timeout" or
-- the AWS error code), `message`, and when known `status`, `request_id`,
-- `retryable`. Misuse (bad argument types, waiting outside a task) raises.
-- Messages never carry credentials: callers pass only what is safe to show.
local M = {}

local Error = {}
Error.__index = Error
Error.__name = "aio_aws.Error"

function Error.__tostring(e)
  local s = tostring(e.code) .. ": " .. tostring(e.message or "")
  local extra = {}
  if e.status then extra[#extra + 1] = "status " .. tostring(e.status) end
  if e.request_id then extra[#extra + 1] = "request id " .. tostring(e.request_id) end
  if #extra > 0 then s = s .. " (" .. table.concat(extra, ", ") .. ")" end
  if e.traceback then s = s .. "\n" .. e.traceback end
  return s
end

--- Make an error. `fields` (optional) is copied into the error.
-- @tparam string code stable error code
-- @tparam string message human readable text
-- @tparam[opt] table fields extra fields (status, request_id, retryable, ...)
-- @treturn table the error
function M.new(code, message, fields)
  if type(code) ~= "string" then error("errors.new: code must be a string", 2) end
  local e = { code = code, message = message ~= nil and tostring(message) or code }
  if fields then
    for k, v in pairs(fields) do
      if e[k] == nil then e[k] = v end
    end
  end
  if e.retryable == nil then e.retryable = false end
  return setmetatable(e, Error)
end

--- Give a plain table (as the C core returns them) the error metatable.
function M.wrap(t)
  if getmetatable(t) == Error then return t end
  if t.retryable == nil then t.retryable = false end
  return setmetatable(t, Error)
end

--- True when `v` is an error made by this module.
function M.is(v)
  return getmetatable(v) == Error
end

M.Error = Error
return M
