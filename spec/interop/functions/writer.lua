-- Writes to stdout with io.write (partial lines included) and print.
return function()
  io.write("part one, ")
  io.write("part two\n", "second line", "\n")
  print("printed")
  io.write("no newline at the end")
  return "written"
end
