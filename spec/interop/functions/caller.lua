-- Calls AWS itself through the same endpoint: writes event.message to a log
-- stream and reads it back.
return {
  timeout = 20,
  handler = function(event, context)
    local logs = assert(context.client("logs"))
    local group, stream = event.group, event.stream
    assert(logs:create_log_group{ logGroupName = group })
    assert(logs:create_log_stream{ logGroupName = group, logStreamName = stream })
    assert(logs:put_log_events{ logGroupName = group, logStreamName = stream,
      logEvents = { { timestamp = event.timestamp, message = event.message } } })
    local out = assert(logs:get_log_events{ logGroupName = group, logStreamName = stream, startFromHead = true })
    return { messages = { out.events[1].message } }
  end,
}
