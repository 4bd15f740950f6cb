"""Benchmarks for django-synerise: ``make bench`` (see bench/README.md)."""
