"""Exercise by exception: expiring positions, contrary instructions, outcomes."""
