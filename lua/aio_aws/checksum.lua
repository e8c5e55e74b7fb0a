--- Flexible checksums (CRC32, CRC32C, SHA1, SHA256) for requests and
-- responses, as botocore/httpchecksum.py applies them.
--
-- Values are base64 of the big-endian digest (the form of S3's
-- `x-amz-checksum-<alg>` headers, "Checking object integrity" in the S3
-- user guide). Requests carry one either in a header (in-memory bodies) or
-- in an aws-chunked trailer (streamed bodies over https: `Content-Encoding:
-- aws-chunked`, `x-amz-trailer`, `x-amz-decoded-content-length`,
-- `x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER`; S3
-- "sigv4-streaming.html", botocore AwsChunkedWrapper).
--
-- Which operations: the model's `httpChecksum` trait
-- (`requestAlgorithmMember`, `requestChecksumRequired`,
-- `requestValidationModeMember`, `responseAlgorithms`) and
-- `httpChecksumRequired`. Modes (`request_checksum_calculation`,
-- `response_checksum_validation`): "when_required" (the default here, so
-- S3-compatible stores that know nothing of flexible checksums keep
-- working: a checksum only when the caller names an algorithm, Content-MD5
-- where the model requires a checksum, validation only with `ChecksumMode =
-- "ENABLED"`) or "when_supported" (botocore >= 1.36: CRC32 by default on
-- every operation that takes one, validation whenever the operation
-- offers it).
local core = require "aio_aws.core"
local errors = require "aio_aws.errors"

local b64 = core.base64_encode
local format, lower = string.format, string.lower

local M = {}

--- Supported algorithms (lower case) -> base64 digest length.
M.ALGORITHMS = { crc32 = 8, crc32c = 8, sha1 = 28, sha256 = 44 }
-- botocore's _ALGORITHMS_PRIORITY_LIST (crc64nvme needs awscrt; not here)
M.PRIORITY = { "crc32c", "crc32", "sha1", "sha256" }
--- botocore DEFAULT_CHECKSUM_ALGORITHM (when_supported).
M.DEFAULT = "crc32"
--- aws-chunked chunk size (S3 wants every chunk but the last >= 8 KiB).
M.CHUNK_SIZE = 65536
--- `x-amz-content-sha256` of an unsigned aws-chunked body with trailers.
M.STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

local HEADER = {}
for alg in pairs(M.ALGORITHMS) do HEADER[alg] = "x-amz-checksum-" .. alg end

local function check_alg(alg, fn)
  if type(alg) ~= "string" or not M.ALGORITHMS[alg] then
    error(("checksum.%s: unknown algorithm %s (crc32, crc32c, sha1, sha256)"):format(fn, tostring(alg)), 3)
  end
end

--- The header (and trailer) name of `alg`: "x-amz-checksum-crc32".
function M.header_name(alg)
  check_alg(alg, "header_name")
  return HEADER[alg]
end

--- A streaming hasher of `alg`: `h:update(s)`, `h:b64digest()` (once).
function M.new(alg)
  check_alg(alg, "new")
  local h = core.hasher(alg)
  return {
    update = function(_, s) h:update(s) end,
    b64digest = function() return b64(h:digest()) end,
  }
end

--- base64 checksum of the string `data`.
function M.compute(alg, data)
  check_alg(alg, "compute")
  if type(data) ~= "string" then error("checksum.compute: data must be a string", 2) end
  if alg == "crc32" then return b64(string.pack(">I4", core.crc32(data))) end
  if alg == "crc32c" then return b64(string.pack(">I4", core.crc32c(data))) end
  if alg == "sha1" then return b64(core.sha1(data)) end
  return b64(core.sha256(data))
end

--- FlexibleChecksumError unless `data` has the checksum `expected`.
-- @return true, or nil, err
function M.verify(alg, expected, data)
  local got = M.compute(alg, data)
  if got == expected then return true end
  return nil, M.mismatch(expected, got)
end

--- The error of a mismatch (botocore's message).
function M.mismatch(expected, got)
  return errors.new("FlexibleChecksumError",
    ("Expected checksum %s did not match calculated checksum: %s"):format(tostring(expected), tostring(got)))
end

--- The request checksum an operation needs (botocore
-- resolve_request_checksum_algorithm, with this library's default mode).
-- @param op the operation (aio_aws.model)
-- @tparam table params the call's parameters
-- @tparam string mode "when_required" or "when_supported"
-- @return nil (none), "md5" (Content-MD5), or the algorithm (lower case)
--   and, for a default algorithm, the header that names it
--   (`x-amz-sdk-checksum-algorithm`); or nil, err for an unknown algorithm
function M.request_algorithm(op, params, mode)
  local hc = op.httpChecksum
  local member = hc and hc.requestAlgorithmMember
  if member and params[member] ~= nil then
    local alg = lower(tostring(params[member]))
    if not M.ALGORITHMS[alg] then
      return nil, errors.new("FlexibleChecksumError", "Unsupported checksum algorithm: " .. alg)
    end
    return alg
  end
  local required = op.checksum_required
  if mode == "when_supported" and (member or required) then
    local ref = member and op.input and op.input.target.members[member]
    return M.DEFAULT, ref and ref.location == "header" and ref.locationName or nil
  end
  if required then return "md5" end
  return nil
end

--- The member to set to "ENABLED" before building the request, when the
-- mode asks for validation the caller did not (botocore >= 1.36
-- handle_request_validation_mode_member), else nil.
function M.validation_member(op, params, mode)
  local hc = op.httpChecksum
  local mm = hc and hc.requestValidationModeMember
  if mm and mode == "when_supported" and params[mm] == nil then return mm end
  return nil
end

--- Algorithms to look for in the response, in priority order, or nil
-- when this call does not validate (botocore
-- resolve_response_checksum_algorithms: the mode member must be set).
function M.response_algorithms(op, params)
  local hc = op.httpChecksum
  local mm = hc and hc.requestValidationModeMember
  if not mm or params[mm] == nil then return nil end
  local offered = {}
  for _, a in ipairs(hc.responseAlgorithms or {}) do offered[lower(a)] = true end
  local list = {}
  for _, a in ipairs(M.PRIORITY) do
    if offered[a] then list[#list + 1] = a end
  end
  return #list > 0 and list or nil
end

--- The algorithm and expected value to validate a response with: the
-- first of `algorithms` whose header is present (values with a "-N"
-- suffix are checksums of part checksums and cannot be checked: skipped,
-- as botocore does). nil when none applies.
function M.pick_response(algorithms, headers)
  for _, a in ipairs(algorithms) do
    local v = headers[HEADER[a]]
    if v and not v:find("-", 1, true) then return a, v end
  end
  return nil
end

--- Content-Length of an aws-chunked body with a trailer: `decoded`
-- payload bytes in chunks of `chunk_size`, then "0\r\n", the trailer line
-- and an empty line.
function M.chunked_length(decoded, alg, chunk_size)
  check_alg(alg, "chunked_length")
  chunk_size = chunk_size or M.CHUNK_SIZE
  local full, rest = decoded // chunk_size, decoded % chunk_size
  local n = full * (#format("%x", chunk_size) + 4 + chunk_size)
  if rest > 0 then n = n + #format("%x", rest) + 4 + rest end
  return n + 3 + #HEADER[alg] + 1 + M.ALGORITHMS[alg] + 2 + 2
end

--- A body source (for http.request's `body_source`) that frames what
-- `read(n)` returns as aws-chunked with the checksum in a trailer.
-- `read(n)` must return exactly n bytes until the last `decoded` byte
-- (nil or "" after); fewer is an error (the file changed).
function M.chunked_source(read, decoded, alg, chunk_size)
  check_alg(alg, "chunked_source")
  chunk_size = chunk_size or M.CHUNK_SIZE
  local h = core.hasher(alg)
  local left, done = decoded, false
  return function()
    if done then return nil end
    if left == 0 then
      done = true
      return "0\r\n" .. HEADER[alg] .. ":" .. b64(h:digest()) .. "\r\n\r\n"
    end
    local want = left < chunk_size and left or chunk_size
    local data, err = read(want)
    if err then return nil, err end
    if data == nil or #data ~= want then
      return nil, errors.new("BodyReadError", ("body ended after %d of %d bytes"):format(
        decoded - left + (data and #data or 0), decoded))
    end
    left = left - want
    h:update(data)
    return format("%x\r\n", want) .. data .. "\r\n"
  end
end

return M
