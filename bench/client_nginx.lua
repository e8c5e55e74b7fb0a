-- The nginx of the client benchmark (see bench/README.md, "Client"): the
-- test nginx of spec/support/nginx.lua with, through its `extra` option,
-- locations that answer like S3 (path-style addressing) and Lambda:
--
--   HEAD /bench-bucket/obj-1k      HeadObject: 200, Content-Length 1024, ETag, Last-Modified
--   GET  /bench-bucket/obj-1k      GetObject: the same with the 1 KiB body
--   PUT  /bench-bucket/obj-1k      PutObject: 200, empty body, ETag, x-amz-server-side-encryption
--   GET  /bench-bucket?list-type=2&encoding-type=url
--                                  ListObjectsV2: a static 1,000-key page (below)
--   POST /2015-03-31/functions/bench-fn/invocations
--                                  Invoke: 200, a static JSON payload
--
-- Every answer carries x-amz-request-id (x-amzn-RequestId for Lambda) and
-- x-amz-id-2; other methods get 405, a list without list-type=2 and
-- encoding-type=url 400. Signatures are not checked.
--
-- The fixtures (the object, the list page) are written to
-- bench/out/client_fixtures/ at every start; they are deterministic.
--
--   lua5.4 bench/client_nginx.lua       from the repository root: prints
--                                       "PORT PID" and stops nginx when
--                                       stdin closes (like bench/nginx_up.lua)
--   require("client_nginx").list_xml()  the page, for other scripts
local root = (arg and arg[0] and arg[0]:match("^(.*)/bench/[^/]*$")) or "."

local M = {}

M.BUCKET, M.KEY, M.FUNCTION = "bench-bucket", "obj-1k", "bench-fn"
M.OBJECT_SIZE, M.LIST_KEYS = 1024, 1000
M.LIST_QUERY = "list-type=2&encoding-type=url"
M.INVOKE_PAYLOAD = '{"statusCode":200,"body":"ok","items":[1,2,3]}' -- no quote nginx would unescape
M.REGION = "us-east-1"

-- A fixed pseudo-random sequence (LCG), so the fixtures never change.
local function lcg(seed)
  local x = seed
  return function(n)
    x = (x * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
    return (x >> 20) % n
  end
end

--- The 1 KiB object (printable, so a mistake shows in a hexdump).
function M.object()
  local rnd, out = lcg(7), {}
  local alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
  for i = 1, M.OBJECT_SIZE do
    local j = rnd(#alphabet) + 1
    out[i] = alphabet:sub(j, j)
  end
  return table.concat(out)
end

--- The ListObjectsV2 page, byte for byte as S3 sends it for
-- `?list-type=2&encoding-type=url` on a bucket of 1,000 objects: the XML
-- declaration, then one line; keys url-encoded (hive-style partitions, so
-- "=" arrives as %3D), ETags with their quotes as &quot;, no Owner (S3
-- sends it only with fetch-owner=true).
function M.list_xml()
  local rnd = lcg(42)
  local parts = {
    '<?xml version="1.0" encoding="UTF-8"?>\n',
    '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
    "<Name>", M.BUCKET, "</Name><Prefix></Prefix><KeyCount>", M.LIST_KEYS,
    "</KeyCount><MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>",
    "<IsTruncated>false</IsTruncated>",
  }
  for i = 1, M.LIST_KEYS do
    local day, hour = 1 + (i - 1) // 48, (i - 1) // 2 % 24
    local key = ("events/dt%%3D2026-11-%02d/hour%%3D%02d/part-%05d-%08x.snappy.parquet")
      :format(day, hour, i - 1, rnd(0x7fffffff))
    local etag = ("%08x%08x%08x%08x"):format(rnd(0x7fffffff), rnd(0x7fffffff), rnd(0x7fffffff), rnd(0x7fffffff))
    local modified = ("2026-11-%02dT%02d:%02d:%02d.000Z"):format(day, hour, rnd(60), rnd(60))
    parts[#parts + 1] = ("<Contents><Key>%s</Key><LastModified>%s</LastModified>"
      .. "<ETag>&quot;%s&quot;</ETag><Size>%d</Size><StorageClass>STANDARD</StorageClass></Contents>")
      :format(key, modified, etag, 1024 + rnd(64 * 1024 * 1024))
  end
  parts[#parts + 1] = "</ListBucketResult>"
  return table.concat(parts)
end

-- x-amz-id-2 is a base64 string of about 76 characters on S3.
local ID2 = "vlR7PnpV2Ce81l0PRw6jlUpck7Jo5ZsQjryTjKlc5aLWGVHPZLj5NeC6qMa0emYBDXOo6QBU0Wo="

--- The server-block directives: one exact location per operation.
function M.locations(dir, etag)
  local common = ("      add_header x-amz-id-2 %s;\n      add_header x-amz-request-id $request_id;\n"):format(ID2)
  return table.concat({
    "    # client benchmark (bench/client_nginx.lua): S3 and Lambda answers",
    "    location = /" .. M.BUCKET .. "/" .. M.KEY .. " {",
    '      if ($request_method = PUT) { return 200 ""; }',
    "      if ($request_method !~ ^(GET|HEAD)$) { return 405; }",
    "      alias " .. dir .. "/" .. M.KEY .. ";",
    "      types { }",
    "      default_type binary/octet-stream;",
    "      etag off;",
    common .. ("      add_header ETag '\"%s\"';"):format(etag),
    "      add_header x-amz-server-side-encryption AES256;",
    "      client_max_body_size 5m;",
    "    }",
    "    location = /" .. M.BUCKET .. " {",
    "      if ($request_method != GET) { return 405; }",
    '      if ($args !~ "(^|&)list-type=2(&|$)") { return 400; }',
    '      if ($args !~ "(^|&)encoding-type=url(&|$)") { return 400; }',
    "      alias " .. dir .. "/list.xml;",
    "      types { }",
    "      default_type application/xml;",
    "      etag off;",
    '      add_header Last-Modified "";',  -- S3 sends none with a listing
    common .. "      add_header x-amz-bucket-region " .. M.REGION .. ";",
    "    }",
    "    location = /2015-03-31/functions/" .. M.FUNCTION .. "/invocations {",
    "      if ($request_method != POST) { return 405; }",
    "      default_type application/json;",
    "      add_header x-amzn-RequestId $request_id;",
    "      add_header X-Amz-Executed-Version 1;",
    "      add_header X-Amzn-Trace-Id 'root=1-673f0e2a-5d7c1b9e2f4a6c8e0b1d3f5a;sampled=0;lineage=01:0';",
    "      add_header x-amzn-Remapped-Content-Length 0;",
    "      client_max_body_size 6m;",
    "      return 200 '" .. M.INVOKE_PAYLOAD .. "';",
    "    }",
    "",
  }, "\n")
end

--- Write the fixtures into `dir`; returns the object's ETag (its MD5).
function M.write_fixtures(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  for name, content in pairs{ [M.KEY] = M.object(), ["list.xml"] = M.list_xml() } do
    local f = assert(io.open(dir .. "/" .. name, "wb"))
    assert(f:write(content))
    f:close()
  end
  local p = assert(io.popen("md5sum '" .. dir .. "/" .. M.KEY .. "'"))
  local etag = p:read("a"):match("^(%x+)")
  p:close()
  return assert(etag, "md5sum failed")
end

if arg and arg[0] and arg[0]:match("client_nginx%.lua$") and not ... then
  package.path = root .. "/spec/?.lua;" .. package.path
  local nginx = require "support.nginx"
  local abs = root
  if abs:sub(1, 1) ~= "/" then
    local p = assert(io.popen("pwd"))
    abs = p:read("l") .. (root == "." and "" or "/" .. root)
    p:close()
  end
  local dir = abs .. "/bench/out/client_fixtures"
  local etag = M.write_fixtures(dir)
  local srv = nginx.start{ tls = false, big_size = 0, extra = M.locations(dir, etag) }
  io.stdout:write(srv.port, " ", srv.pid, "\n")
  io.stdout:flush()
  io.stdin:read("a")
  srv:stop()
end

return M
