"""Course text never drifts from the package: every name the notebooks and READMEs use exists."""

import ast
import importlib.util
import re

import pytest

from vitgrade import weeks

TEXTS = sorted([*weeks.SOLUTION_NOTEBOOKS.glob("*.py"), *weeks.WEEKS_DIR.glob("*/README.md"),
                weeks.REPO / "README.md", weeks.REPO / "CONTRIBUTING.md"])


def _module_names(module: str) -> set[str]:
    path = weeks.SOLUTION_PACKAGE / f"{module}.py"
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):  # COLOURS: dict[...] = ...
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
    return names


@pytest.mark.parametrize("path", TEXTS, ids=lambda p: str(p.relative_to(weeks.REPO)))
def test_imports_and_paths_named_in_course_text_exist(path):
    text = path.read_text()
    for module, names in re.findall(r"from vitcourse\.(\w+) import ([\w, ]+)", text):
        assert (weeks.SOLUTION_PACKAGE / f"{module}.py").exists(), f"{path.name}: no module vitcourse.{module}"
        missing = {n.strip() for n in names.split(",") if n.strip()} - _module_names(module)
        assert not missing, f"{path.name} imports {sorted(missing)} from vitcourse.{module}, which has no such names"
    for rel in re.findall(r"`(src/vitcourse/\w+\.py)`", text):
        assert (weeks.REPO / rel).exists(), f"{path.name} names {rel}, which does not exist"
    for module in re.findall(r"from (vitgrade\.\w+) import", text):
        assert importlib.util.find_spec(module), f"{path.name} imports {module}, which does not exist"
