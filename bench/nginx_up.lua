-- Start the test nginx of spec/support/nginx.lua for a benchmark, print
-- "PORT PID" on one line, and stop it when stdin closes (the runner closing
-- the pipe, or dying). If this process itself is killed, the kernel kills
-- nginx (see spec/support/proc.lua).
--
--   lua5.4 bench/nginx_up.lua          from the repository root
local root = (arg[0]:match("^(.*)/bench/[^/]*$")) or "."
package.path = root .. "/spec/?.lua;" .. package.path

local nginx = require "support.nginx"

-- No TLS and no big file: the benchmark only uses /small.
local srv = nginx.start{ tls = false, big_size = 0 }
io.stdout:write(srv.port, " ", srv.pid, "\n")
io.stdout:flush()
io.stdin:read("a")
srv:stop()
