-- Waits event.seconds (an asynchronous sleep), with a 1 second timeout.
local aws = require "aio_aws"
return {
  timeout = 1,
  handler = function(event)
    print("sleeping")
    aws.sleep(event.seconds or 0)
    print("woke up")
    return "slept"
  end,
}
