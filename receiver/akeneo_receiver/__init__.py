"""Receiver: verify, validate, enqueue durably, answer the PIM."""
