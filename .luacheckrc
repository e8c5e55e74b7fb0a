-- luacheck configuration (make lint runs it before the specs)
std = "lua54"
max_line_length = 160
-- interface functions (protocol serializers, waitables) keep arguments they ignore
unused_args = false
exclude_files = { "lua/aio_aws/models/**" }
files["spec/**/*.lua"] = { std = "+busted" }
files["examples/embed/script.lua"] = { globals = { "HOST_EXIT" } }
