"""Support shared by the tests and the benchmarks: real servers, pods run as processes,
realistic PIM payloads, and the scenarios both a benchmark and a test run.

The product never imports it, and it never imports ``tests`` or ``bench`` (.importlinter).
"""
