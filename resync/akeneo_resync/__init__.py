"""Resync: the PIM catch-up job (command ``reconcile``) and the replay of dead letters and
stream ranges (command ``replay``), run as Jobs beside the worker, never inside it."""
