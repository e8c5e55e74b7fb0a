-- Returns its event; prints a line so tests can find it in the log.
return function(event, context)
  print("echo from " .. context.function_name, context.aws_request_id)
  return { event = event, request_id = context.aws_request_id, arn = context.invoked_function_arn,
    remaining_ok = context.get_remaining_time_in_millis() > 0, client_context = context.client_context }
end
