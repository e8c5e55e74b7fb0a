--- A small HTTP/1.1 server on the same loop as the client (the local
-- endpoint's front door). Requests are parsed in C by libhttp-parser; each
-- request's handler runs in its own task.
--
--     local server = require "aio_aws.server"
--     local srv = assert(server.listen{
--       port = 0,                                   -- any free port: srv.port
--       handler = function(req)
--         return {status = 200, headers = {["content-type"] = "text/plain"}, body = "hi\n"}
--       end,
--     })
--     print(srv.url)   -- http://127.0.0.1:PORT
--     srv:close()
--
-- Options: `host` ("127.0.0.1"; another address only when given; a literal
-- IP, "localhost" meaning 127.0.0.1), `port` (0), `handler` (required),
-- `max_header_bytes` (65536: request line and headers; 414/431 beyond;
-- libhttp-parser's own cap of 80 KiB applies above that),
-- `spool_threshold` (1 MiB: larger bodies go to a temporary file),
-- `spool_dir` ($TMPDIR or /tmp), `max_body_bytes` (5 GiB: 413 beyond),
-- `idle_timeout` (60 s without a byte between requests or while sending:
-- the connection is closed), `request_timeout` (300 s to read a whole
-- request: 408), `linger_timeout` (2 s to drain input after a final
-- response), `backlog`, `on_error(err, req)` (called when a handler raises
-- or returns something unusable; default: one line on stderr),
-- `on_response(req, status, ok, err)` (called once the response has been
-- sent, ok = true, or could not be, ok = false: e.g. the client left).
--
-- `req`: method, target (raw), path (raw, still percent-encoded), query
-- (raw, without "?"), headers (lower-case name -> value, repeats joined
-- with ","), header_list ({name, value} as received), http_version, body
-- (string) or, above spool_threshold, body_file (a temporary file deleted
-- after the response; rename it away to keep it), body_length,
-- remote_addr, remote_port. Chunked bodies arrive de-chunked; "Expect:
-- 100-continue" is answered by the server.
--
-- The handler returns `{status, headers, body | body_file [, body_offset,
-- body_length], close}`; the server adds Date, Content-Length and
-- Connection. For HEAD it sends no body and keeps the handler's
-- Content-Length. A handler that raises (or returns no table) gives a 500
-- with a short body; the error goes to `on_error` only.
--
-- A listening server keeps `aws.run` going until `srv:close()` (so a task
-- that raises before closing it leaves run() waiting: prefer
-- `local srv <close> = assert(server.listen{...})`). Dropping the server
-- object without closing it closes it when it is collected. Trailer fields
-- of a chunked body are added to `headers`/`header_list`.
local core = require "aio_aws.core"
local async = require "aio_aws.async"
local errors = require "aio_aws.errors"

local c_listen = core.http_server_listen
local spawn, suspend, current = async.spawn, async.suspend, async.current

local M = {}

local Server = {}
Server.__index = Server
Server.__name = "aio_aws.server"

local function internal_error()
  return { status = 500, headers = { ["content-type"] = "text/plain" }, body = "Internal Server Error\n" }
end

local function default_on_error(err)
  local msg = tostring(err):match("^[^\n]*")
  io.stderr:write("aio_aws.server: handler failed: ", msg, "\n")
end

-- One request: run the handler, answer, wait until the answer has left (so
-- the loop keeps running while a large body is sent).
-- ex:respond returns true (wait for the send), false, sent, why (already
-- over), or nil, why (the body file cannot be sent: nothing was).
local function serve_one(ex, req, handler, on_error, on_response)
  local t = current()
  local ok, res = xpcall(handler, debug.traceback, req)
  if ok and type(res) ~= "table" then
    ok, res = false, "handler returned " .. type(res) .. " instead of a response table"
  end
  local r
  if ok then
    r = table.pack(pcall(ex.respond, ex, t.token, res))
    if not r[1] then
      ok, res = false, r[2]         -- a malformed response table
    elseif r[2] == nil then
      ok, res = false, r[3]         -- its body_file cannot be sent
    else
      table.remove(r, 1)
    end
  end
  local status = ok and res.status or 500
  if not ok then
    pcall(on_error, res, req)
    r = table.pack(ex:respond(t.token, internal_error()))
  end
  local sent, why = r[2], r[3]
  if r[1] then sent, why = suspend(t, ex) end
  if on_response then pcall(on_response, req, status, sent == true, why) end
end

-- The acceptor: takes complete requests from the C side and spawns one
-- task per request. It holds only the C object, so a forgotten server
-- object can still be collected (its __gc closes it).
local function acceptor(c, handler, on_error, on_response)
  local t = current()
  local waitable = { cancel = function() c:unwait() end }
  while true do
    local req, ex = c:next()
    if req then
      spawn(serve_one, ex, req, handler, on_error, on_response)
    elseif c:closing() then
      return
    elseif c:wait(t.token) then
      suspend(t, waitable)
    end
  end
end

local NUMBER_OPTS = { "port", "max_header_bytes", "spool_threshold", "max_body_bytes",
  "idle_timeout", "request_timeout", "linger_timeout", "backlog" }

--- Start listening. Returns the server, or nil, err (code "ListenError")
-- when the address cannot be bound. Misuse raises.
function M.listen(opts)
  if type(opts) ~= "table" then error("server.listen: expected an options table, got " .. type(opts), 2) end
  if type(opts.handler) ~= "function" then error("server.listen: option 'handler' must be a function", 2) end
  for _, k in ipairs({ "on_error", "on_response" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then error("server.listen: option '" .. k .. "' must be a function", 2) end
  end
  for _, k in ipairs({ "host", "spool_dir" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then error("server.listen: option '" .. k .. "' must be a string", 2) end
  end
  for _, k in ipairs(NUMBER_OPTS) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v < 0 or v ~= v) then
      error("server.listen: option '" .. k .. "' must be a number >= 0", 2)
    end
  end
  if opts.port ~= nil and (math.type(opts.port) ~= "integer" or opts.port > 65535) then
    error("server.listen: option 'port' must be an integer 0..65535", 2)
  end
  local copts = {}
  for k, v in pairs(opts) do
    if type(v) ~= "function" then copts[k] = v end
  end
  local ok, c, err = pcall(c_listen, copts)
  if not ok then error("server.listen: " .. tostring(c), 2) end
  if not c then return nil, errors.new("ListenError", err) end
  local host, port = c:info()
  local self = setmetatable({ host = host, port = port, _c = c }, Server)
  self.url = ("http://%s:%d"):format(host:find(":", 1, true) and ("[" .. host .. "]") or host, port)
  self._acceptor = spawn(acceptor, c, opts.handler, opts.on_error or default_on_error, opts.on_response)
  return self
end

--- Stop listening and close idle connections; requests being handled
-- finish (their connections close after the response). Idempotent.
function Server:close()
  self._c:close()
  return true
end

--- {connections, queued, handling, writing, closed, accept_pauses}
function Server:stats()
  return self._c:stats()
end

function Server:__tostring()
  return ("aio_aws.server (%s)"):format(self.url)
end

Server.__close = Server.close
Server.__gc = Server.close

return M
