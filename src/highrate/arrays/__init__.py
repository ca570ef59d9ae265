"""numpy fast paths for awkward arrays: packed jagged arrays, masks, list positions, bin lookups."""
