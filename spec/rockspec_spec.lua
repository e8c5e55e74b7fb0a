-- The rockspec builds the same sources: it is what tools/gen-rockspec writes
-- from the tree, and `luarocks make` of a clean copy into a temporary tree
-- gives modules that load and run from that tree alone.
local proc = require "support.proc"

describe("rockspec", function()
  it("is up to date with the tree (make rockspec)", function()
    local want = proc.sh("lua5.4 tools/gen-rockspec")
    local f = assert(io.open("aio-aws-scm-1.rockspec"))
    local have = f:read("a"):gsub("\n$", "")
    f:close()
    assert.are.equal(want, have)
  end)

  it("luarocks make installs a working module into a temporary tree", function()
    local tmp = proc.tmpdir("aio-rock")
    finally(function() proc.rmdir(tmp) end)
    -- a clean copy: no core.so built by the Makefile
    local out, ok = proc.sh(("mkdir -p %s/src && tar cf - --exclude='*.so' csrc lua bin aio-aws-scm-1.rockspec | tar xf - -C %s/src 2>&1")
      :format(tmp, tmp))
    assert(ok, out)
    out, ok = proc.sh(("cd %s/src && luarocks --lua-version=5.4 make --deps-mode=none --tree=%s/tree aio-aws-scm-1.rockspec 2>&1")
      :format(tmp, tmp))
    assert(ok, out)
    local script = [[
      local aws = require "aio_aws"
      local core = require "aio_aws.core"
      local where = package.searchpath("aio_aws.core", package.cpath)
      local r = aws.run(function() aws.sleep(0.01); return core.sha256_hex and "ok" or "no-crypto" end)
      io.write(where, " ", tostring(r))
    ]]
    local cmd = ("cd / && LUA_PATH='%s/tree/share/lua/5.4/?.lua;%s/tree/share/lua/5.4/?/init.lua;;' "
      .. "LUA_CPATH='%s/tree/lib/lua/5.4/?.so;;' lua5.4 -e %s 2>&1"):format(tmp, tmp, tmp, proc.quote(script))
    out = proc.sh(cmd)
    assert.are.equal(tmp .. "/tree/lib/lua/5.4/aio_aws/core.so ok", out)
    -- the command is installed too, and finds its modules in the tree
    out, ok = proc.sh(("cd / && %s/tree/bin/aio-aws local --help 2>&1"):format(tmp))
    assert(ok, out)
    assert.truthy(out:find("--data-dir", 1, true), out)
  end)
end)
