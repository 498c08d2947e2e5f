"""Helpers the tests share: plain modules, imported as `tests.support.<module>`.

Fixtures built on them live in tests/conftest.py."""
