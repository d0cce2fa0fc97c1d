"""Destinations the worker applies changes to: webhook, postgres, sqlite."""
