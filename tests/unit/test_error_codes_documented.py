"""The README's table of error codes is the one the code answers with: no code missing, none stale."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "auth", "sources", "schema", "resolvers")
CODE = re.compile(r"^[A-Z][A-Z_]+[A-Z]$")
ERROR_TYPES = {"PolicyError", "RequestError", "_error_body", "GraphQLError", "bad_input"}


def _codes_in(expression: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(expression)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and CODE.match(n.value)}


def codes_in_code() -> set[str]:
    """Every string the code gives as an error code: `code = ...`, `code=...`, `{"code": ...}`, error calls."""
    found: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        if isinstance(target, ast.Name) and target.id == "code":
                            found |= _codes_in(node.value)
                        elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):  # a, code = x, "C"
                            found |= {c for t, v in zip(target.elts, node.value.elts, strict=False)
                                      if isinstance(t, ast.Name) and t.id == "code" for c in _codes_in(v)}
                elif isinstance(node, ast.keyword) and node.arg == "code":
                    found |= _codes_in(node.value)
                elif isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values, strict=True):
                        if isinstance(key, ast.Constant) and key.value == "code" and isinstance(value, ast.Constant):
                            found |= _codes_in(value)  # (record maps also have a "code" key: a column)
                elif isinstance(node, ast.Call):
                    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                    if name in ERROR_TYPES:
                        for arg in node.args[1:]:
                            found |= _codes_in(arg)
    return found


def codes_in_readme() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return {m.group(1) for m in re.finditer(r"^\| `([A-Z_]+)` \|", section, re.MULTILINE)}


def test_every_error_code_is_in_the_readme_table() -> None:
    missing = codes_in_code() - codes_in_readme()
    assert not missing, f"codes the gateway answers with but README's table lacks: {sorted(missing)}"


def test_the_readme_table_names_no_code_the_gateway_does_not_give() -> None:
    stale = codes_in_readme() - codes_in_code()
    assert not stale, f"README's table names codes nothing gives: {sorted(stale)}"
