-- Raises: the invocation answers FunctionError "Unhandled".
return function(event)
  print("about to fail")
  error("boom: " .. tostring(event.why), 0)
end
