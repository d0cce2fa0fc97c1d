"""Operator: thin kopf handlers over pure builders (spec -> child manifests)."""
