--- A throwaway certificate authority and a server certificate for loopback
-- TLS, made with the `openssl` command (EC P-256: fast to generate).
--
--   local tls = require "support.tls"
--   local t = tls.generate()        -- or tls.generate{ dir = d, days = 2 }
--   t.ca_file     CA certificate (PEM): curl --cacert, CURLOPT_CAINFO
--   t.capath      directory holding the CA under its hash name (openssl
--                 rehash): curl --capath, CURLOPT_CAPATH
--   t.cert_file   server certificate (PEM), subjectAltName IP:127.0.0.1 and
--                 DNS:localhost, signed by the CA
--   t.key_file    server private key (PEM, unencrypted)
--   t.ca_key_file CA private key, to sign more certificates in a spec
--   t.dir         where the files are
--   t:remove()    removes t.dir, only if generate() created it
--
-- Runtime failures return nil, message (with openssl's output); misuse raises.
local proc = require "support.proc"

local M = {}

local SERVER_EXT = [[
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
]]

local function run(dir, cmd)
  local out, ok = proc.sh("cd " .. proc.quote(dir) .. " && " .. cmd .. " 2>&1")
  if not ok then return nil, "openssl failed: " .. cmd .. "\n" .. out end
  return true
end

--- Generate the CA and the server certificate.
-- opts.dir   directory to write into (created if missing; default: a new temp
--            dir that t:remove() deletes)
-- opts.days  validity in days (default 2: throwaway, but no trouble around
--            midnight)
function M.generate(opts)
  opts = opts or {}
  local dir, own = opts.dir, false
  if dir then
    os.execute("mkdir -p " .. proc.quote(dir))
  else
    dir, own = proc.tmpdir("tls"), true
  end
  local days = math.tointeger(opts.days or 2)
  if not days or days < 1 then error("tls.generate: days must be a positive integer", 2) end
  local f = assert(io.open(dir .. "/server.ext", "w"))
  f:write(SERVER_EXT)
  f:close()
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
  local steps = {
    ("openssl req -x509 %s -keyout ca.key -out ca.pem -days %d -subj '/CN=aio-aws test CA'"
      .. " -addext 'basicConstraints=critical,CA:TRUE'"
      .. " -addext 'keyUsage=critical,keyCertSign,cRLSign'"):format(ec, days),
    ("openssl req %s -keyout server.key -out server.csr -subj '/CN=localhost'"):format(ec),
    ("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
      .. " -CAserial ca.srl -out server.pem -days %d -extfile server.ext"):format(days),
    -- capath: the CA under its subject-hash name, as OpenSSL's lookup wants it.
    "mkdir -p capath && cp ca.pem capath/ca.pem && openssl rehash capath",
  }
  for _, cmd in ipairs(steps) do
    local ok, err = run(dir, cmd)
    if not ok then
      if own then proc.rmdir(dir) end
      return nil, err
    end
  end
  return {
    dir = dir,
    ca_file = dir .. "/ca.pem",
    ca_key_file = dir .. "/ca.key",
    capath = dir .. "/capath",
    cert_file = dir .. "/server.pem",
    key_file = dir .. "/server.key",
    remove = function()
      if own then own = false; proc.rmdir(dir) end
    end,
  }
end

return M
