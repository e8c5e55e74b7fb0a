--- Outside clients for spec/server_spec.lua, run without blocking the loop
-- (aio_aws.process), so the server under test keeps serving meanwhile:
-- curl, Debian's /usr/bin/python3 (spec/support/server_probe.py) and
-- sha256sum as the independent oracle for bytes on disk. Call them inside a
-- task. Children never inherit the sanitizer preload (make check-asan).
local process = require "aio_aws.process"
local cjson = require "cjson"

local M = {}

local env
local function child_env()
  if not env then
    env = process.environ()
    env.LD_PRELOAD = nil
  end
  return env
end

local function run(argv, timeout)
  local r, err = process.run(argv, { env = child_env(), timeout = timeout or 120, max_output = 8 * 1048576 })
  if not r then error(("%s did not finish: %s"):format(argv[1], tostring(err)), 3) end
  return r
end

--- The probe's JSON result for `scenario` against `port`.
function M.probe(scenario, port, ...)
  local argv = { "/usr/bin/python3", "spec/support/server_probe.py", scenario, tostring(port) }
  for i = 1, select("#", ...) do argv[#argv + 1] = tostring(select(i, ...)) end
  local r = run(argv)
  if r.exit_code ~= 0 then error(("probe %s failed (%s): %s"):format(scenario, tostring(r.exit_code), r.stderr), 2) end
  return cjson.decode(r.stdout)
end

--- curl with `args` (a list); -sS, bounded by --max-time. Returns
-- {code, status, stdout, stderr}; `-w` prints the status last.
function M.curl(args)
  local argv = { "curl", "-sS", "--max-time", "60", "-w", "\n%{http_code}" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local r = run(argv)
  local body, status = r.stdout:match("^(.*)\n(%d+)$")
  return { code = r.exit_code, status = tonumber(status), body = body or r.stdout, stderr = r.stderr }
end

--- sha256 of a file (or of `len` bytes from `off`) computed by sha256sum /
-- Python, not by the code under test.
function M.sha256_file(path)
  local r = run({ "sha256sum", "--", path })
  return (r.stdout:match("^(%x+)"))
end

function M.sha256_slice(path, off, len)
  local r = run({ "/usr/bin/python3", "-c", [[
import hashlib, sys
with open(sys.argv[1], "rb") as f:
    f.seek(int(sys.argv[2]))
    data = f.read(int(sys.argv[3]))
print(hashlib.sha256(data).hexdigest(), len(data))
]], path, tostring(off), tostring(len) })
  local hex, n = r.stdout:match("^(%x+) (%d+)")
  return hex, tonumber(n)
end

--- A file of `size` random bytes.
function M.random_file(path, size)
  local r = run({ "sh", "-c", 'head -c "$1" /dev/urandom > "$2"', "sh", tostring(size), path })
  assert(r.exit_code == 0, r.stderr)
  return path
end

return M
