-- boto3 conformance (contract §6): every spec/interop/test_*.py runs with
-- Debian's /usr/bin/python3 against a fresh `aio-aws local` (one endpoint
-- per script, its own data dir, Lambda handlers from spec/interop/functions).
-- Each script is one test here: it must exit 0; its `ok <n> <name>` lines
-- and, on failure, its output are shown.
local proc = require "support.proc"
local emulator = require "support.emulator"

local PYTHON = "/usr/bin/python3"
local root = (debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$")) or "."
local DIR = proc.sh("cd " .. proc.quote(root) .. " && pwd") .. "/spec/interop"

local function scripts()
  local out = proc.sh("ls " .. proc.quote(DIR) .. "/test_*.py 2>/dev/null")
  local list = {}
  for line in out:gmatch("[^\n]+") do list[#list + 1] = line end
  table.sort(list)
  return list
end

local function have_boto3()
  return os.execute(PYTHON .. " -c 'import boto3' >/dev/null 2>&1") == true
end

describe("boto3 interop", function()
  if not have_boto3() then
    pending("no boto3 in /usr/bin/python3 (make deps installs python3-boto3)")
    return
  end
  local list = scripts()
  it("has scripts to run", function()
    assert.is_true(#list > 0, "no " .. DIR .. "/test_*.py")
  end)

  for _, script in ipairs(list) do
    local name = script:match("([^/]+)%.py$")
    it(name, function()
      local em = assert(emulator.start { functions_dir = DIR .. "/functions" })
      finally(function() em:stop() end)
      local env = {
        "AIO_ENDPOINT=" .. em.url, "AWS_ACCESS_KEY_ID=" .. em.access_key,
        "AWS_SECRET_ACCESS_KEY=" .. em.secret_key, "AWS_DEFAULT_REGION=" .. em.region,
        "AIO_DATA_DIR=" .. em.data_dir, "AIO_FUNCTIONS_DIR=" .. DIR .. "/functions",
        -- nothing from the user's own AWS setup
        "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
      }
      for i, e in ipairs(env) do env[i] = proc.quote(e) end
      local cmd = ("cd %s && env -u LD_PRELOAD -u AWS_PROFILE -u AWS_SESSION_TOKEN %s timeout 600 %s %s 2>&1; echo \"exit=$?\"")
        :format(proc.quote(DIR), table.concat(env, " "), PYTHON, proc.quote(script))
      local out = proc.sh(cmd)
      local status = tonumber(out:match("exit=(%d+)$"))
      local oks = select(2, out:gsub("\nok %d+", "")) + (out:match("^ok %d+") and 1 or 0)
      assert(status == 0, ("%s failed (exit %s, %d ok):\n%s\n--- endpoint log ---\n%s")
        :format(name, tostring(status), oks, out, em:log()))
      assert.is_true(oks > 0, name .. " reported no `ok` line:\n" .. out)
    end)
  end
end)
