"""Training stage: losses now; the fold loop comes next."""
