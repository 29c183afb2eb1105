"""ser-ray."""
