"""Building blocks shared by more than one seed model (one class per block)."""
