"""What the Functions host does before calling a function: index the app's functions.

`FunctionApp.get_functions()` may be called once per app (a second call raises), so the index is
kept here for everyone who drives the handlers in-process (the demo, the tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_INDEX: dict[int, dict[str, Callable[..., Any]]] = {}


def user_functions(app: Any) -> dict[str, Callable[..., Any]]:
    if id(app) not in _INDEX:
        _INDEX[id(app)] = {f.get_function_name(): f.get_user_function() for f in app.get_functions()}
    return _INDEX[id(app)]
