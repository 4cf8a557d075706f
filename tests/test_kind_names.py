"""No code outside the PE-kind registry names a kind (issue: one registry, no restated tables).

Every string constant in the packages above :mod:`golden` is checked against
the registry's names (kinds, their standalone tops and arrays). Allowed: the
registry itself (``hw/kinds``), docstrings (they are documentation), and
matplotlib's ``"log"`` axis scale. ``golden`` is not checked: it lies below
the registry and has its own vocabulary (the ``"int4"`` format, the ``"log"``
rounding mode, the GEMM kinds of its tensor captures).
"""

import ast
import pathlib

from hw.kinds import KINDS

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CHECKED = ("hw", "rtl_gen", "verify", "report", "boards", "fourbit")
SCALE_CALLS = {"set_xscale", "set_yscale", "xscale", "yscale", "loglog"}
#: Strings that equal a kind's name but mean something else, with why.
HOMONYMS = {
    ("fourbit/cli.py", "train"): "the `fourbit train` subcommand (golden.train), not the train kind",
}


def _kind_names():
    names = set()
    for kind in KINDS.values():
        names |= {kind.name, kind.array_module, kind.ws_array_module, kind.lean_array_module}
        if kind.standalone is not None:
            names.add(kind.standalone.module)
    return names


def _docstrings(tree):
    nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                nodes.add(id(first.value))
    return nodes


def _scale_arguments(tree):
    nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in SCALE_CALLS:
            nodes |= {id(arg) for arg in node.args}
    return nodes


def named_kinds(path):
    """``(line, string)`` of every non-docstring string constant in ``path`` that is a kind name."""
    names = _kind_names()
    tree = ast.parse(path.read_text(), filename=str(path))
    allowed = _docstrings(tree) | _scale_arguments(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in allowed:
            if node.value in names:
                found.append((node.lineno, node.value))
    return found


def test_only_the_registry_names_kinds():
    offenders = []
    for package in CHECKED:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if path.is_relative_to(REPO_ROOT / "hw" / "kinds"):
                continue
            where = str(path.relative_to(REPO_ROOT))
            offenders += [
                f"{where}:{line}: {name!r}" for line, name in named_kinds(path) if (where, name) not in HOMONYMS
            ]
    assert not offenders, "kind names outside hw/kinds:\n" + "\n".join(offenders)


def test_the_check_finds_a_kind_name(tmp_path):
    source = tmp_path / "example.py"
    source.write_text('"""Docstrings may say "log"."""\nKIND = "log"\nax.set_yscale("log")\n')
    assert named_kinds(source) == [(2, "log")]
