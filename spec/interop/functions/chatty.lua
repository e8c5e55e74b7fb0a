-- Prints event.lines numbered lines of 100 bytes each.
return function(event)
  for i = 1, event.lines or 0 do
    print(string.format("line %05d ", i) .. string.rep("x", 89))
  end
  return event.lines
end
