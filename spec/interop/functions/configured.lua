-- A function with configuration: timeout, memory, reserved concurrency.
local aws = require "aio_aws"
return {
  timeout = 10,
  memory_size = 256,
  reserved_concurrency = 1,
  description = "one at a time",
  handler = function(event)
    aws.sleep(event.seconds or 0)
    return { ok = true }
  end,
}
