"""Comparing the shapes of JSON bodies (the emulator's against Azure's recorded ones)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def key_paths(value: Any, free_form: Collection[str] = (), prefix: str = "") -> set[str]:
    """Every key path in a JSON value (`properties.traffic`, `value[].id`); below a path named in
    `free_form` (a user's own dictionary) keys are data, not shape, and are not listed."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{prefix}.{key}" if prefix else key
            paths.add(path)
            if path.split("[].")[-1] not in free_form:
                paths |= key_paths(inner, free_form, path)
    elif isinstance(value, list) and value:
        paths |= key_paths(value[0], free_form, f"{prefix}[]")
    return paths
