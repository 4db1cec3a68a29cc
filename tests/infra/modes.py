"""The Bicep in infra/ as deployed in one mode: parameters fixed, conditions and simple ternaries on
them resolved, resources whose condition is false removed.

Why: neither checkov nor these tests can deploy (no Bicep CLI here), and checkov cannot evaluate
parameters: it reads a conditional resource's body as missing (every property check fails) and a
ternary `networkIsolation ? 'Disabled' : 'Enabled'` as an object that matches no expected value. So
for each mode the templates are rewritten at the source level, exactly as ARM would evaluate what the
rewrite touches, and the result is what checkov scans and what the tests walk:

- `if (<condition>)` of a resource, module or loop body, when the condition uses only parameters
  given here, `!`, `&&`, `||`, parentheses and `empty(<parameter>)`: true -> the `if (...)` goes;
  false -> the whole declaration goes. Conditions on anything else (variables, outputs) stay.
- `<bool parameter> ? <a> : <b>` with literal or dotted-name operands -> `<a>` or `<b>`.
- Module files no remaining `module` declaration references are left out (they are not deployed).
- Private mode only: a `checkov:skip` whose reason starts with `[public mode]` goes (its check must
  then pass on its own).

`unresolved()` lists what still mentions a mode parameter after the rewrite; the tests require it to
be empty for networkIsolation, so no private setting is left for checkov to misread.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from tests.infra.bicep import INFRA, parse_file

_SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000000"
INPUTS_ID = f"{_SUBSCRIPTION}/resourceGroups/ml-rg/providers/Microsoft.Storage/storageAccounts/stinputs"
AMPLS_ID = f"{_SUBSCRIPTION}/resourceGroups/hub-rg/providers/Microsoft.Insights/privateLinkScopes/ampls-hub"

# The template's own defaults (main.bicep): the public deployment of today.
DEFAULTS: dict[str, bool | str] = {
    "networkIsolation": False,
    "enableLifecycleTopic": True,
    "wireEvents": False,
    "enableAlerts": False,
    "enableHealthAlerts": True,
    "predictionInputsStorageId": "",
    "monitorPrivateLinkScopeId": "",
    "privateDnsZonesResourceGroup": "",
}
# Every optional part on (azd's second pass, alerts, inputs reader): the most checkov can look at.
EVERYTHING = {**DEFAULTS, "wireEvents": True, "enableAlerts": True, "predictionInputsStorageId": INPUTS_ID}

MODES: dict[str, dict[str, bool | str]] = {
    "public": DEFAULTS,
    "private": {**DEFAULTS, "networkIsolation": True},
    "public-everything": EVERYTHING,
    # with an AMPLS, the VNet already has privatelink.blob... linked: central zones (OPERATIONS.md)
    "private-everything": {
        **EVERYTHING,
        "networkIsolation": True,
        "monitorPrivateLinkScopeId": AMPLS_ID,
        "privateDnsZonesResourceGroup": "hub-dns-rg",
    },
}

_OPERAND = r"(?:'(?:[^'\\]|\\.)*'|null|true|false|\d+|[A-Za-z_][\w.]*)"


def evaluate(condition: str, values: dict[str, bool | str]) -> bool | None:
    """The condition's value, or None when it uses anything but the given parameters."""
    python = condition
    for match in re.findall(r"empty\(\s*(\w+)\s*\)", condition):
        if match not in values:
            return None
        python = re.sub(rf"empty\(\s*{match}\s*\)", str(values[match] in ("", False)), python)
    words = set(re.findall(r"[A-Za-z_]\w*", python)) - {"True", "False"}
    if not words <= set(values) or any(not isinstance(values[w], bool) for w in words):
        return None
    for word in words:
        python = re.sub(rf"\b{word}\b", str(values[word]), python)
    tokens = re.findall(r"True|False|&&|\|\||!=|!|\(|\)|\S", python)
    if not set(tokens) <= {"True", "False", "&&", "||", "!", "(", ")"}:
        return None
    value, rest = _or(tokens)
    return value if not rest else None


def _or(tokens: list[str]) -> tuple[bool, list[str]]:
    value, rest = _and(tokens)
    while rest[:1] == ["||"]:
        right, rest = _and(rest[1:])
        value = value or right
    return value, rest


def _and(tokens: list[str]) -> tuple[bool, list[str]]:
    value, rest = _not(tokens)
    while rest[:1] == ["&&"]:
        right, rest = _not(rest[1:])
        value = value and right
    return value, rest


def _not(tokens: list[str]) -> tuple[bool, list[str]]:
    if tokens[:1] == ["!"]:
        value, rest = _not(tokens[1:])
        return not value, rest
    if tokens[:1] == ["("]:
        value, rest = _or(tokens[1:])
        assert rest[:1] == [")"], tokens
        return value, rest[1:]
    return tokens[0] == "True", tokens[1:]


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    """Index of the bracket closing the one at `start` (skipping strings and // comments)."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == "'":
            i += 1
            while i < len(text) and text[i] != "'":
                i += 2 if text[i] == "\\" else 1
        elif text.startswith("//", i):
            i = text.index("\n", i)
            continue
        elif c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced {opening} at {start}")


def specialize(text: str, values: dict[str, bool | str]) -> str:
    pos = 0
    while (match := re.compile(r"\bif\s*\(").search(text, pos)) is not None:
        close = _closing(text, match.end() - 1, "(", ")")
        verdict = evaluate(text[match.end() : close], values)
        if verdict is None:
            pos = close
        elif verdict:
            end = close + 1
            while text[end] == " ":
                end += 1
            text = text[: match.start()] + text[end:]
            pos = match.start()
        else:
            start = text.rindex("\n", 0, match.start()) + 1
            while not re.match(r"(resource|module) ", text[start:]):
                start = text.rindex("\n", 0, start - 1) + 1
            eq = text.index("=", text.index("'", start))
            bracket = re.compile(r"[\[{]").search(text, eq)
            assert bracket is not None
            end = _closing(text, bracket.start(), bracket.group(), "]" if bracket.group() == "[" else "}")
            end = text.find("\n", end)
            text = text[:start] + text[end + 1 :]
            pos = start
    for name, value in values.items():
        if isinstance(value, bool):
            ternary = re.compile(rf"(?<![\w.!]){name}\s*\?\s*({_OPERAND})\s*:\s*({_OPERAND})")
            text = ternary.sub(lambda m, v=value: m.group(1) if v else m.group(2), text)
    if values.get("networkIsolation") is True:
        text = "\n".join(
            line for line in text.splitlines() if not re.search(r"checkov:skip=[\w]+:\[public mode\]", line)
        )
        text += "\n"
    return text


@cache
def variant(mode: str) -> Path:
    """A directory with the mode's main.bicep and the module files it still deploys."""
    values = MODES[mode]
    out = Path(tempfile.mkdtemp(prefix=f"bicep-{mode}-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    todo, done = ["main.bicep"], set()
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        text = specialize((INFRA / name).read_text(), values)
        (out / name).write_text(text)
        todo += re.findall(r"^module \w+ '([\w.-]+\.bicep)'", text, re.M)
    for extra in ("workbook.json", "queries"):  # loadTextContent targets, for completeness
        source = INFRA / extra
        if source.is_dir():
            shutil.copytree(source, out / extra)
        elif source.exists():
            shutil.copy(source, out / extra)
    return out


def parsed(mode: str, name: str = "main.bicep") -> dict[str, Any]:
    return parse_file(variant(mode) / name)


def unresolved(mode: str, word: str) -> list[str]:
    """Code lines (comments, descriptions and the parameter's declaration aside) still naming `word`."""
    hits = []
    for path in sorted(variant(mode).glob("*.bicep")):
        for line in path.read_text().splitlines():
            code = line.split("//")[0]
            if re.search(rf"\b{word}\b", code) and not re.match(r"\s*(param|@description)", code):
                hits.append(f"{path.name}: {line.strip()}")
    return hits
