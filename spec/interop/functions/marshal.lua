-- Returns something JSON cannot hold.
return function()
  return { f = print }
end
