"""The CLI tests drive the real function handlers through the same harness as the API tests."""

from tests.functions.conftest import fns, harness

__all__ = ["fns", "harness"]
