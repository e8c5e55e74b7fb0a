--- AWS Signature Version 4: header signing, presigned URLs and S3
-- aws-chunked streaming signatures.
--
-- A thin layer over the C signer in `aio_aws.core` (csrc/sigv4.c), which
-- builds the canonical request, the string to sign and the signature as
-- described in
-- <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>,
-- with the S3 rules of `sig-v4-header-based-auth.html`,
-- `sigv4-query-string-auth.html` and `sigv4-streaming.html` (Amazon S3 API
-- Reference). It is checked against AWS's own test suites and against
-- botocore (spec/sigv4_spec.lua).
--
-- Errors: bad input (a missing region, service or credential, a value of
-- the wrong type, an unparsable time) raises. Nothing here fails at run
-- time otherwise. No error message and no `tostring` shows a credential.
--
-- @module aio_aws.sigv4
local core = require("aio_aws.core")

local M = {}

--- `x-amz-content-sha256` of a request whose body is not signed.
M.UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
--- `x-amz-content-sha256` of an aws-chunked seed request (sigv4-streaming.html).
M.STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
--- Hex SHA-256 of the empty string.
M.EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

--- Sign a request.
--
-- `request` fields:
--
-- * `method` (default `"GET"`).
-- * Either `url` (absolute; its path and query are taken as they are on
--   the wire), or `host` (with a port if any), `path` (default `"/"`),
--   `query` and `scheme` (default `"https"`).
-- * `query`: a wire-form string (`"a=1&b=x%20y"`), a list of decoded
--   `{name, value}` pairs, or a map of decoded `name = value` (a list of
--   values for a repeated name; `true` for a name without a value). With
--   `url`, its query is signed too.
-- * `headers`: a map (name -> string, or a list of strings for a repeated
--   header, kept in order) or a list of `{name, value}` pairs. A `Host`
--   header, when given, is signed as it is; otherwise it comes from the
--   URL or `host` (lower case, default port dropped).
-- * `body` (string) or `payload_hash` (hex SHA-256, or a literal such as
--   `UNSIGNED-PAYLOAD`).
--
-- `credentials`: `{access_key, secret_key [, session_token]}`.
--
-- `options`:
--
-- * `region`, `service` (required).
-- * `time`: epoch seconds or ISO 8601 UTC (`"20150830T123600Z"`,
--   `"2015-08-30T12:36:00Z"`); default now.
-- * `s3` (default: service is `"s3"`): no path normalisation, no second
--   encoding of the path, `x-amz-content-sha256` added and signed.
-- * `normalize_path`, `double_encode`: default true except for S3. The path
--   is the wire path: with `double_encode` it is URI-encoded once more for
--   the canonical request (what every service but S3 expects), without it
--   it is used as it is.
-- * `presign_expires`: seconds (1 to 604800); makes a presigned URL
--   instead of an Authorization header. S3 presigned URLs sign
--   `UNSIGNED-PAYLOAD`.
-- * `unsigned_payload`: sign `UNSIGNED-PAYLOAD` instead of the body hash.
-- * `sign_body`: add and sign `x-amz-content-sha256` (other services).
-- * `omit_session_token`: send the session token without signing it.
-- * `signed_headers`: sign exactly these header names (to verify an
--   incoming request with the client's own SignedHeaders); each must be
--   present.
--
-- The payload hash is, in order: `request.payload_hash`; `UNSIGNED-PAYLOAD`
-- (`unsigned_payload`, or an S3 presigned URL); the request's own
-- `x-amz-content-sha256` header; SHA-256 of `body`; SHA-256 of "".
--
-- Headers the signer owns are replaced if present: `authorization`,
-- `x-amz-date`, `x-amz-security-token` (when there is a token) and
-- `x-amz-content-sha256` (when it adds one). `user-agent`, `expect`,
-- `x-amzn-trace-id` and the hop-by-hop headers are sent but not signed.
--
-- @tparam table request
-- @tparam table credentials
-- @tparam table options
-- @treturn table result: `{headers = {lower-case name = value, ...}, url = string}`.
--   Header signing: `headers` holds every header to send (host, x-amz-date,
--   x-amz-security-token, x-amz-content-sha256 and authorization included),
--   `url` the request URL with its query in canonical form. Presigning:
--   `url` is the presigned URL, `headers` the headers it was signed with
--   (host and any other, which the client must send unchanged).
-- @treturn table debug: `{canonical_request, string_to_sign, signature,
--   signed_headers, scope, date}`.
-- @function sign
M.sign = core.sigv4_sign

--- Encoded body length of an aws-chunked upload (sigv4-streaming.html):
-- each chunk of `chunk_size` bytes (the last one shorter) is framed as
-- `hex(size);chunk-signature=<64 hex>\r\n<data>\r\n`, then a final empty
-- chunk. This is the `Content-Length` of the seed request.
-- @tparam integer decoded_length bytes of payload (`x-amz-decoded-content-length`)
-- @tparam integer chunk_size bytes per chunk (S3 wants at least 8 KiB)
-- @treturn integer
function M.chunked_length(decoded_length, chunk_size)
  decoded_length, chunk_size = math.tointeger(decoded_length), math.tointeger(chunk_size)
  if not decoded_length or decoded_length < 0 then
    error("aio_aws.sigv4: decoded_length must be a non-negative integer", 2)
  end
  if not chunk_size or chunk_size < 1 then
    error("aio_aws.sigv4: chunk_size must be a positive integer", 2)
  end
  local frame = #";chunk-signature=" + 64 + 4 -- two CRLFs
  local full, rest = decoded_length // chunk_size, decoded_length % chunk_size
  local n = full * (#string.format("%x", chunk_size) + frame + chunk_size)
  if rest > 0 then
    n = n + #string.format("%x", rest) + frame + rest
  end
  return n + 1 + frame -- the final "0;chunk-signature=...\r\n\r\n"
end

--- Headers of an aws-chunked seed request, to merge into `request.headers`
-- before signing it with `payload_hash = M.STREAMING_PAYLOAD`.
-- @tparam integer decoded_length
-- @tparam integer chunk_size
-- @treturn table `{["content-encoding"], ["x-amz-decoded-content-length"], ["content-length"]}`
function M.streaming_headers(decoded_length, chunk_size)
  return {
    ["content-encoding"] = "aws-chunked",
    ["x-amz-decoded-content-length"] = tostring(decoded_length),
    ["content-length"] = tostring(M.chunked_length(decoded_length, chunk_size)),
  }
end

--- Chunk signer for an aws-chunked upload, chained from the seed request's
-- signature (sigv4-streaming.html).
--
-- `seed` is the `debug` table `sign` returned for the seed request (its
-- signature and time are used), or the seed signature as a string, in
-- which case `options.time` must be the seed's time. `options` needs
-- `region` and `service` as for the seed.
--
-- The returned object (`aio_aws.sigv4_chunker`, closed by `close`, `__gc`
-- or `__close`, which wipe its signing key) has:
--
-- * `c:sign_chunk(data)` -> signature, string_to_sign (advances the chain);
-- * `c:frame(data)` -> the framed chunk
--   `hex(#data);chunk-signature=SIG\r\n data \r\n`, signature;
-- * `c:signature()` -> the latest signature;
-- * `c:close()`.
--
-- Frame the payload in chunks, then `c:frame("")` for the final chunk.
-- @tparam table credentials
-- @tparam table options
-- @tparam table|string seed
-- @return the chunk signer
function M.chunked(credentials, options, seed)
  if type(options) ~= "table" then
    error("aio_aws.sigv4: options must be a table (region, service, time)", 2)
  end
  if type(seed) == "table" then
    local opts = {}
    for k, v in pairs(options) do opts[k] = v end
    opts.time = seed.date
    return core.sigv4_chunker(credentials, opts, seed.signature)
  end
  return core.sigv4_chunker(credentials, options, seed)
end

return M
