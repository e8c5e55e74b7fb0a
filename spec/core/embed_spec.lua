-- examples/embed: a C host with its own libev loop runs a Lua script whose
-- tasks make requests; they progress inside the host's ev_run.
local nginx = require "support.nginx"
local proc = require "support.proc"

describe("embedding in a host with its own libev loop", function()
  local srv, tmp
  setup(function()
    srv = nginx.start({ tls = false, big_size = 1024 })
    tmp = proc.tmpdir("aio-embed")
  end)
  teardown(function()
    if srv then srv:stop() end
    if tmp then proc.rmdir(tmp) end
  end)

  it("builds the example host and runs requests on the host's loop", function()
    local exe = tmp .. "/host"
    local cc = "cc -Wall -Wextra -Werror -O1 -o " .. proc.quote(exe)
      .. " examples/embed/host.c -Icsrc $(pkg-config --cflags --libs lua5.4) -lev 2>&1"
    local out, ok = proc.sh(cc)
    assert(ok, out)
    -- The host loads aio_aws from this checkout (or the sanitizer build).
    local cpath = (os.getenv("AIO_AWS_CPATH") or "") .. ";lua/?.so;;"
    local cmd = ("LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH=%s %s examples/embed/script.lua %s 25; echo \"exit=$?\"")
      :format(proc.quote(cpath), proc.quote(exe), proc.quote(srv:url("")))
    local res = proc.sh(cmd)
    local want = {}
    for i = 1, 25 do want[i] = tostring(i) end
    assert.matches("script: tasks spawned, returning to the host", res, 1, true)
    assert.matches("answers: " .. table.concat(want, ","), res, 1, true)
    assert.matches("host_loop: true", res, 1, true)
    assert.matches("host: loop finished after %d+ ticks", res)
    assert.matches("exit=0", res, 1, true)
  end)
end)
