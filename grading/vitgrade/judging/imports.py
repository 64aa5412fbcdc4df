"""The week's import rule, checked in the judge on the sources as submitted.

Each week allows its exercise modules a few packages (:attr:`vitgrade.weeks.Week.student_packages`:
torch, numpy and what the week adds) besides the standard library and vitcourse. The libraries the
hidden tests compare with (timm for Swin's windows, pytorch-grad-cam for Grad-CAM, torchattacks for
PGD) are not among them: a submission that calls the reference would pass every parity test
without doing the exercise. The student's process cannot import them (they are not in its file
view, see :func:`vitgrade.confine.view.package_paths`), and this module decides the grade the same
way wherever the process runs: every task whose code imports an installed package outside the rule
scores 0 for that task, with a message naming the package, the line and the rule. (A name nothing
provides is left to the import itself: "No module named ...", the message a typo deserves.)

Which task a line belongs to comes from the reference solution's markers
(``### BEGIN SOLUTION [Week 4 · Task 4.1]`` inside ``window_partition``): an import inside a function
or class of the exercise module costs that function's tasks; one at the top of the module, or in a
helper module the student added and imports, costs every task of the module.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys

from vitgrade import weeks

TASK_LABEL = re.compile(r"### BEGIN SOLUTION\s*\[[^\]]*Task\s+(?P<task>\d+\.\d+)\]")
IMPORTERS = {("importlib", "import_module"), ("", "__import__"), ("builtins", "__import__")}


def _top_level_owner(tree: ast.Module) -> dict[int, str]:
    """Line number -> name of the top-level function or class it lies in."""
    owner = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                owner[line] = node.name
    return owner


def task_owners(week: weeks.Week, module: str) -> dict[str, set[str]]:
    """For one exercise module of the reference: top-level function/class name -> its tasks."""
    path = weeks.SOLUTION_PACKAGE / module
    text = path.read_text()
    owner = _top_level_owner(ast.parse(text))
    found: dict[str, set[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = TASK_LABEL.search(line)
        if match and number in owner:
            found.setdefault(owner[number], set()).add(match["task"])
    return found


def _imported(tree: ast.Module) -> list[tuple[str, int]]:
    """(top-level package, line) of every absolute import, ``__import__("x")`` and
    ``importlib.import_module("x")`` with a literal name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name.partition(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.partition(".")[0], node.lineno))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = (func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else "",
                    func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
            if name in IMPORTERS:
                found.append((node.args[0].value.partition(".")[0], node.lineno))
    return found


def _local_modules(tree: ast.Module) -> set[str]:
    """Modules of the package a module imports: 'helpers' for ``from vitcourse import helpers``,
    ``from vitcourse.helpers import x``, ``from . import helpers``, ``from .helpers import x``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 0 and not (base == weeks.PACKAGE or base.startswith(weeks.PACKAGE + ".")):
                continue
            parts = base.split(".")[1:] if node.level == 0 else [p for p in base.split(".") if p]
            names.add(parts[0] if parts else "")
            if not parts:
                names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(weeks.PACKAGE + "."):
                    names.add(alias.name.split(".")[1])
    names.discard("")
    return names


def refused_tasks(week: weeks.Week, sources: dict[str, bytes]) -> dict[str, str]:
    """Task id -> the message, for every task whose code imports a package the week does not allow.

    ``sources`` are the submitted package's files (paths relative to ``vitcourse/``). Modules the
    grader replaces with its own copies (shared modules, earlier weeks' exercises) are not checked.
    """
    allowed = set(week.student_packages) | set(sys.stdlib_module_names) | {weeks.PACKAGE, "__future__"}

    def installed(top: str) -> bool:  # a name nothing provides fails at import time, with its own message
        try:
            return importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            return False

    replaced = set(weeks.SHARED_MODULES) | set(week.support_modules)
    trees: dict[str, ast.Module] = {}
    for rel, data in sources.items():
        if rel.endswith(".py") and rel not in replaced:
            try:
                trees[rel] = ast.parse(data.decode("utf-8", "replace"))
            except SyntaxError:
                continue  # it fails to import, and every test says so
    broken = {rel: [(top, line) for top, line in _imported(tree) if top not in allowed and installed(top)]
              for rel, tree in trees.items()}
    refused: dict[str, str] = {}

    def refuse(tasks: set[str], rel: str, top: str, line: int, via: str = "") -> None:
        message = (f"{rel}:{line} imports {top}{via}: {week.import_rule}. Tasks that use it score 0; "
                   f"remove the import and write the code yourself")
        for task in sorted(tasks):
            refused.setdefault(task, message)

    for module in week.modules:
        if module not in trees:
            continue
        owners = task_owners(week, module)
        every = set().union(*owners.values()) if owners else {t.id for t in week.tasks}
        owner = _top_level_owner(trees[module])
        for top, line in broken[module]:
            refuse(owners.get(owner.get(line, ""), every), module, top, line)
        for local in _local_modules(trees[module]):
            for rel in (f"{local}.py", f"{local}/__init__.py"):
                if rel in broken and rel not in week.modules:
                    for top, line in broken[rel]:
                        refuse(every, rel, top, line, via=f" (used by {module})")
    return refused
