--- Raw HTTP for the layers above, on the C core's libcurl transfers.
--
--     local res, err = http.request{method = "GET", url = "http://127.0.0.1/x"}
--     -- res = {status, headers = {lower-case name -> value}, header_list, body}
--
-- Options: `method`, `url`, `headers` (map, or list of {name, value}),
-- `body` (string) or `body_file` (path, streamed; `body_offset`,
-- `body_length` for a range), or `body_source` (a function returning the
-- next chunk of the body, nil at the end, or nil, err; called in the
-- requesting task, which may wait inside it; `body_length` then gives the
-- Content-Length, else the body is sent chunked; at most `feed_buffer`
-- bytes, default 1 MiB, wait unsent), `sink_file` (write a 2xx body to this path;
-- error bodies stay in `res.body`), `stream` (return at the headers with
-- `res.body` a Stream), `stream_buffer` (bytes buffered before the transfer
-- is paused, default 1 MiB), `timeout` (whole transfer), `connect_timeout`,
-- `read_timeout` (no byte sent or received for that long; seconds),
-- `low_speed_limit` (bytes/s) with `low_speed_time` (s), `verify` (TLS,
-- default true), `cafile`, `capath`, `proxy` (default: the standard
-- environment variables), `pool` (from `http.pool`), `http_version`.
--
-- Failures return `nil, err` with `err.code` one of Timeout,
-- ConnectionError, DNSError, TLSError, InvalidURL, ProtocolError,
-- BodyReadError, BodyWriteError, Cancelled (and curl's message).
-- Must be called inside a task.
local core = require "aio_aws.core"
local async = require "aio_aws.async"
local errors = require "aio_aws.errors"

local suspend, need_task = async.suspend, async.need_task
local c_request = core.http_request
local concat = table.concat

local M = {}

local function as_error(e)
  if type(e) == "table" then return errors.wrap(e) end
  if e == "Cancelled" then return errors.new("Cancelled", "request cancelled") end
  return errors.new("HTTPError", tostring(e))
end

--- A response body read as it arrives. Memory stays bounded: when
-- `stream_buffer` bytes wait unread, the transfer pauses until you read.
local Stream = {}
Stream.__index = Stream
Stream.__name = "aio_aws.http.Stream"

-- Next chunk of at most `max` bytes (0: whatever is buffered); nil at the
-- end; nil, err on failure.
local function next_chunk(self, max)
  local req = self._req
  if not req then return nil, errors.new("Closed", "body stream is closed") end
  while true do
    local s, err = req:take(max)
    if s then return s end
    if s == nil then
      if err then return nil, as_error(err) end
      return nil
    end
    local t = need_task("reading a body stream", 3)
    if req:wait(t.token) then
      local ok, e = suspend(t, req)
      if ok == nil and e then return nil, as_error(e) end
    end
  end
end

--- Read up to `n` bytes (fewer only at the end); nil at the end of the
-- body; nil, err on failure (bytes that arrived before a failure are
-- returned first, the error by the next call). Without `n`, the rest of the body.
function Stream:read(n)
  if n == nil then return self:read_all() end
  if math.type(n) ~= "integer" or n < 1 then error("Stream:read: n must be a positive integer", 2) end
  if self._err then
    local err = self._err
    self._err = nil
    return nil, err
  end
  local parts, got = {}, 0
  while got < n do
    local s, err = next_chunk(self, n - got)
    if not s then
      if err then
        if got == 0 then return nil, err end
        self._err = err -- hand over what arrived; the error comes next
      end
      break
    end
    parts[#parts + 1] = s
    got = got + #s
  end
  if got == 0 then return nil end
  return concat(parts)
end

--- The rest of the body as one string ("" at the end), or nil, err.
function Stream:read_all()
  if self._err then
    local err = self._err
    self._err = nil
    return nil, err
  end
  local parts = {}
  while true do
    local s, err = next_chunk(self, 0)
    if not s then
      if err then return nil, err end
      return concat(parts)
    end
    parts[#parts + 1] = s
  end
end

--- Iterate over chunks of `size` bytes (the last may be shorter). Raises
-- the error object if the transfer fails midway.
function Stream:iter_chunks(size)
  size = size or 65536
  if math.type(size) ~= "integer" or size < 1 then
    error("Stream:iter_chunks: size must be a positive integer", 2)
  end
  return function()
    local s, err = self:read(size)
    if err then error(err, 0) end
    return s
  end
end

--- Iterate over lines (without their "\n" or "\r\n"). Raises the error
-- object if the transfer fails midway.
function Stream:iter_lines()
  local pending = ""
  local eof = false
  return function()
    while true do
      local i = pending:find("\n", 1, true)
      if i then
        local line = pending:sub(1, i - 1)
        pending = pending:sub(i + 1)
        if line:sub(-1) == "\r" then line = line:sub(1, -2) end
        return line
      end
      if eof then
        if pending == "" then return nil end
        local line = pending
        pending = ""
        return line
      end
      local s, err = next_chunk(self, 0)
      if err then error(err, 0) end
      if s then pending = pending .. s else eof = true end
    end
  end
end

--- Stop the transfer and free its buffers. Idempotent; also `<close>`.
function Stream:close()
  local req = self._req
  if req then
    self._req = nil
    req:close()
  end
end
Stream.__close = Stream.close
Stream.__gc = Stream.close

-- Feed mode: pull the body from `source` into the transfer, waiting while
-- its buffer is full, then wait for the response.
local function feed_and_wait(t, req, source)
  while true do
    local chunk, serr = source()
    if chunk == nil then
      req:feed_end(serr ~= nil and tostring(serr) or nil)
      break
    end
    if type(chunk) ~= "string" then
      error("http.request: body_source must return strings, got " .. type(chunk), 0)
    end
    local r = req:feed(chunk)
    while r == false do
      if req:wait(t.token, "space") then
        local ok, e = suspend(t, req)
        if ok == nil and e then return nil, e end
      end
      r = req:feed(chunk)
    end
    if r == nil then break end -- over already (an early answer, or a failure)
  end
  if req:wait(t.token, "response") then return suspend(t, req) end
  return req:result()
end

--- Send a request and wait for the response (see the module comment).
-- @treturn table|nil response, or nil
-- @treturn ?table err
function M.request(opts)
  if type(opts) ~= "table" then
    error("http.request: expected an options table, got " .. type(opts), 2)
  end
  if type(opts.url) ~= "string" then error("http.request: option 'url' must be a string", 2) end
  local t = need_task("http.request")
  local req, err = c_request(t.token, opts)
  if not req then return nil, as_error(err) end
  local source = opts.body_source
  local ok, res, e
  if source then
    ok, res, e = pcall(feed_and_wait, t, req, source)
  else
    ok, res, e = pcall(suspend, t, req)
  end
  if not ok then
    req:close()
    error(res, 0)
  end
  if not res then
    req:close()
    return nil, as_error(e)
  end
  if opts.stream then
    res.body = setmetatable({ _req = req }, Stream)
  end
  return res
end

--- A separate connection pool (each AWS client has its own).
-- `max_total`, `max_per_host` (0: no limit), `max_cached` idle connections.
function M.pool(opts)
  if opts ~= nil and type(opts) ~= "table" then error("http.pool: expected a table", 2) end
  local p, err = core.http_pool(opts or {})
  if not p then return nil, as_error(err) end
  return p
end

M.Stream = Stream
return M
