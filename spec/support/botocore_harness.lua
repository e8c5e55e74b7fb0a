--- Running botocore itself as the independent expectation of a spec.
--
--   local harness = require "support.botocore_harness"
--   local out = harness.run(dir, PYTHON_SOURCE, json_text)   -- decoded JSON
--   local r = harness.rng(42); r() -> [0, 1); r(n) -> 1..n
--
-- `run` writes the script and its input into `dir` (a proc.tmpdir), runs it
-- with Debian's /usr/bin/python3 (which has python3-botocore; the python3
-- first on PATH may not), feeds the input on stdin and decodes the JSON it
-- prints. A failing or hanging script (5 minutes) raises with its stderr:
-- a broken harness must fail the spec, not hang the test run.
local proc = require "support.proc"
local cjson = require "cjson"

local M = {}

M.PYTHON = "/usr/bin/python3"

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

function M.run(dir, source, input)
  local py, inp, errf = dir .. "/harness.py", dir .. "/in.json", dir .. "/err.txt"
  write(py, source)
  write(inp, input)
  local out, ok = proc.sh(("timeout 300 %s %s < %s 2>%s"):format(M.PYTHON, proc.quote(py), proc.quote(inp),
    proc.quote(errf)))
  if not ok then error("botocore harness failed:\n" .. (proc.read_file(errf) or ""), 2) end
  return cjson.decode(out)
end

--- A small deterministic generator (an LCG, high bits only: the low bits of
-- a power-of-two LCG repeat with short periods), so a failure replays.
function M.rng(seed)
  local s = seed
  return function(n)
    s = (s * 1103515245 + 12345) % 2147483648
    local x = s / 2147483648
    if n then return math.floor(x * n) + 1 end
    return x
  end
end

return M
