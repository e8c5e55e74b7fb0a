-- Loaded by busted before the specs (see .busted). `make check-asan` points
-- AIO_AWS_CPATH at the sanitizer build so it is found before lua/?.so.
local extra = os.getenv("AIO_AWS_CPATH")
if extra and extra ~= "" then
  package.cpath = extra .. ";" .. package.cpath
end

-- Hostile GC (make check-asan): collect constantly, so an object the core
-- forgot to anchor is freed while still in use and ASan reports it.
if os.getenv("AIO_AWS_GC_STRESS") == "1" then
  collectgarbage("incremental", 1, 1000)
end
