"""The contract every component shares: the CLI, the AkeneoConnection spec and the names it derives."""
