from tests.functions.conftest import fns, harness  # noqa: F401 - the same fixtures, for hostile-input tests
