-- Loaded by busted before the specs (see .busted). `make check-asan` points
-- AIO_AWS_CPATH at the sanitizer build so it is found before lua/?.so.
local extra = os.getenv("AIO_AWS_CPATH")
if extra and extra ~= "" then
  package.cpath = extra .. ";" .. package.cpath
end
