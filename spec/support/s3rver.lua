--- A throwaway S3 server: s3rver (npm, pinned in package.json) on loopback.
--
--   local s3rver = require "support.s3rver"
--   local s3 = s3rver.start{ buckets = { "b1", "b2" } }  -- raises, with the log's tail, on failure
--   -- s3.endpoint == "http://127.0.0.1:PORT" (path-style), s3.port,
--   -- s3.access_key_id / s3.secret_access_key ("S3RVER"), s3.region,
--   -- s3.vhost_endpoint == "http://s3.localhost:PORT", s3:vhost_url("b1", "/key")
--   s3:stop()                                  -- in teardown()/finally(), see support/proc.lua
--
-- Options (all optional):
--   buckets   list of bucket names created at start (s3rver --configure-bucket)
--   timeout   seconds to wait for it to answer (default 20)
-- The server object is support.node_server's (fields endpoint, port, pid,
-- dir, log, proc; methods url, log_tail, stop) plus the fields above.
--
-- How it runs: `node node_modules/s3rver/bin/s3rver.js -d DIR/data -a 127.0.0.1
-- -p 0 --silent --service-endpoint localhost [--configure-bucket NAME]...`
-- with NODE_OPTIONS=--openssl-legacy-provider. Objects live in files under
-- the temp dir (s3rver has no in-memory store); stop() removes it.
--
-- Things a client spec must know (checked by spec/npm_servers_spec.lua with
-- Debian's boto3 1.26, s3rver 3.7.1 on Node 20 and Debian's Node 18):
-- * Credentials: the access key id MUST be "S3RVER" (any other: 403
--   InvalidAccessKeyId). SigV4 signatures are NOT verified (SigV2 ones
--   are), so a wrong SigV4 signature or secret passes: signing bugs go
--   unnoticed here.
-- * Addressing: path-style on the 127.0.0.1 endpoint. Virtual-host style
--   works for hosts `<bucket>.s3.localhost[:PORT]` (the service endpoint is
--   set to "localhost"); libcurl resolves *.localhost to loopback itself,
--   glibc here does not (send to 127.0.0.1 with that Host header). Beware:
--   any other non-IP host that is not exactly "localhost" is taken whole as
--   a bucket name (CNAME style): Host `b1.localhost` means bucket
--   "b1.localhost".
-- * ListObjectsV2 continuation tokens are DES-encrypted: without
--   --openssl-legacy-provider (set here) Node 17+ fails the second page with
--   500 "error:0308010C:digital envelope routines::unsupported".
-- * Works: CreateBucket (and preset buckets), ListBuckets, Put/Get (also
--   Range: 206 + Content-Range)/Head/Delete/CopyObject with user metadata
--   and Content-Type, DeleteObjects, ListObjectsV2 with Prefix, Delimiter
--   (CommonPrefixes), MaxKeys and continuation tokens (2,500 keys in pages
--   of 1,000), multipart Create/UploadPart/Complete, NoSuchKey and
--   NoSuchBucket (404), HEAD of a missing key (404, no body).
-- * Gaps: a completed multipart upload's ETag is the MD5 of the whole
--   object, not S3's "<MD5 of the part MD5s>-<parts>"; no
--   ListMultipartUploads (501 NotImplemented), ListParts or
--   AbortMultipartUpload (405 MethodNotAllowed). Responses use the namespace
--   "http://doc.s3.amazonaws.com/2006-03-01/", not S3's
--   "http://s3.amazonaws.com/doc/2006-03-01/": a parser must not insist on it.
local node_server = require "support.node_server"

local M = {}

M.ACCESS_KEY_ID = "S3RVER"
M.SECRET_ACCESS_KEY = "S3RVER"

local function vhost_url(self, bucket, path)
  local p = path or "/"
  if p:sub(1, 1) ~= "/" then p = "/" .. p end
  return ("http://%s.s3.localhost:%d%s"):format(bucket, self.port, p)
end

function M.start(opts)
  opts = opts or {}
  local script = node_server.package_file("s3rver", "bin/s3rver.js")
  local srv = node_server.start{
    name = "s3rver",
    argv = function(dir)
      local argv = { script, "-d", dir .. "/data", "-a", "127.0.0.1", "-p", "0", "--silent",
        "--service-endpoint", "localhost" }
      for _, b in ipairs(opts.buckets or {}) do
        if type(b) ~= "string" or b == "" then error("s3rver.start: bucket names must be strings", 3) end
        argv[#argv + 1] = "--configure-bucket"
        argv[#argv + 1] = b
      end
      return argv
    end,
    env = { NODE_OPTIONS = "--openssl-legacy-provider" },
    ready = "S3rver listening on 127%.0%.0%.1:(%d+)",
    timeout = opts.timeout,
    fields = { access_key_id = M.ACCESS_KEY_ID, secret_access_key = M.SECRET_ACCESS_KEY,
      region = "us-east-1", vhost_url = vhost_url },
  }
  srv.vhost_endpoint = "http://s3.localhost:" .. srv.port
  return srv
end

return M
