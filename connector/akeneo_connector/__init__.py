"""What every component shares: the CLI, the AkeneoConnection spec, derived names."""
