"""Benchmarks, and the harness that starts the app and drives browsers against it (load tests, app timings)."""
