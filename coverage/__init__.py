"""Coverage engine: H3 population grid, propagation models, coverage, placement (pure: no DB, no network)."""
