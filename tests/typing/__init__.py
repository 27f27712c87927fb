"""Typed usage of the public API, checked by mypy (not collected by pytest)."""
