-- Raises a table with errorType / errorMessage, as a typed error.
return function()
  error({ errorType = "InventoryError", errorMessage = "out of stock" })
end
