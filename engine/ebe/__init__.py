"""Exercise by exception (SPEC §8): expiring positions, contrary instructions, outcomes."""
