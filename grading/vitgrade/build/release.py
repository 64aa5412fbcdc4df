"""``vitgrade release OUT``: the tree students get, with nothing an instructor keeps back.

Copied: the dependency pins and installer (``course.py``, whose instructor commands explain
themselves there), the student package (stubs), the student notebooks and week READMEs, the
public tests, shipped data and the part of the grading tool a student runs (``vitgrade check``:
the registry, the judge, the sandbox). The README is the repository's, rendered for students
(:func:`render_readme`). Left out: solutions/, the hidden suites, the mutants, the course's own
tests, every nbgrader working folder, and the instructor's sub-packages of the grading tool
(building, nbgrader, self-checks). The copy is then scanned for leaks: solution or hidden-test
markers in any file or notebook cell, any distinctive line of a solution region, of a hidden
test or of a mutant.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from vitgrade import weeks
from vitgrade.build import generate, mutants

# The grading tool's part a student runs (vitgrade check): these modules and sub-packages, whole.
TOOL = "grading/vitgrade"
TOOL_MODULES = ["__init__.py", "cli.py", "weeks.py", "settings.py", "pipes.py"]
TOOL_PACKAGES = ["student", "confine", "judging"]
INCLUDE = ["requirements.txt", "environment.yml", "pyproject.toml", "course.py",
           ".gitignore", "src", "weeks", "tests/public", "data",
           *(f"{TOOL}/{m}" for m in TOOL_MODULES), *(f"{TOOL}/{p}" for p in TOOL_PACKAGES)]
# runs: the excavations Week 8's notebook and command write next to themselves (outputs, not course material)
EXCLUDE_PATTERNS = ("__pycache__", "*.pyc", "*.egg-info", ".ipynb_checkpoints", "cache", "runs")
MARKER = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)", re.MULTILINE)
MIN_SIGNATURE = 24  # shorter lines (`return x`, `)`) are too common to mean anything

# README.md is one source with two renderings. The repository shows it as it is; the release
# drops "repository only" blocks and keeps the text of "release only" blocks, which the
# repository shows as HTML comments (invisible); other comments are notes to maintainers.
REPOSITORY_ONLY = re.compile(r"^<!-- repository only -->\n.*?^<!-- end repository only -->\n?", re.S | re.M)
RELEASE_ONLY = re.compile(r"^<!-- release only\n(.*?)^-->\n?", re.S | re.M)
COMMENT = re.compile(r"^<!--.*?-->\n?", re.S | re.M)


def render_readme(text: str) -> str:
    """The student release's README from the repository's README.md."""
    text = REPOSITORY_ONLY.sub("", text)
    text = RELEASE_ONLY.sub(lambda m: m.group(1), text)
    text = COMMENT.sub("", text)
    return re.sub(r"\n{3,}", "\n\n", text)


def _texts(root: Path):
    """(path, text) for every file; notebooks yield their cell sources."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if path.suffix == ".ipynb":
            cells = json.loads(text).get("cells", [])
            text = "\n".join("".join(c.get("source", "")) for c in cells)
        yield path, text


def _lines(text: str) -> set[str]:
    """Lines long and specific enough to be a fingerprint (imports and comments are not)."""
    return {s for line in text.splitlines()
            if len(s := line.strip()) >= MIN_SIGNATURE
            and not s.startswith(("#", '"', "'", "import ", "from "))}


def secret_lines() -> dict[str, str]:
    """Distinctive lines that must not appear in a release, with where each comes from."""
    secrets: dict[str, str] = {}
    for path in weeks.SOLUTION_PACKAGE.rglob("*.py"):
        inside = False
        for line in path.read_text().splitlines():
            if generate.BEGIN.match(line):
                inside = True
            elif generate.END.match(line):
                inside = False
            elif inside:
                for s in _lines(line):
                    secrets[s] = f"solution {path.name}"
    for path in weeks.TESTS.joinpath("hidden").rglob("*.py"):
        for s in _lines(path.read_text()):
            secrets[s] = f"hidden test {path.relative_to(weeks.TESTS / 'hidden')}"
    for number in weeks.WEEKS:
        for mutant in mutants.load(number):
            for _, new in mutant.blocks:
                for s in _lines(new):
                    secrets[s] = f"mutant {mutant.name}"
    # Lines the students legitimately have (stub signatures, public tests) are not secrets.
    # The shipped grading tool and installer are written independently of any exercise; a
    # generic line they share with a hidden test (`for node in ast.walk(tree):`) is no leak.
    public = set()
    for root in (weeks.STUDENT_PACKAGE, weeks.TESTS / "public", *(weeks.REPO / TOOL / p for p in TOOL_PACKAGES)):
        for _, text in _texts(root):
            public |= _lines(text)
    for name in ["course.py", *(f"{TOOL}/{m}" for m in TOOL_MODULES)]:
        public |= _lines((weeks.REPO / name).read_text())
    return {s: where for s, where in secrets.items() if s not in public}


def leaks(root: Path) -> list[str]:
    found = []
    secrets = secret_lines()
    for path, text in _texts(root):
        rel = path.relative_to(root)
        if MARKER.search(text):
            found.append(f"{rel}: contains a solution/hidden-test marker")
        for s in _lines(text) & secrets.keys():
            found.append(f"{rel}: contains a line of the {secrets[s]}: {s[:60]!r}")
    for forbidden in ("solutions", "tests/hidden", "tests/mutants", "tests/course"):
        if (root / forbidden).exists():
            found.append(f"{forbidden}/ is in the release")
    return found


def build_release(out: Path) -> list[str]:
    """Write the student release to ``out`` (replacing it); return the leaks found (none = ok)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for item in INCLUDE:
        src = weeks.REPO / item
        if src.is_dir():
            shutil.copytree(src, out / item, ignore=shutil.ignore_patterns(*EXCLUDE_PATTERNS))
        elif src.exists():
            (out / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out / item)
    (out / "README.md").write_text(render_readme((weeks.REPO / "README.md").read_text()))
    return leaks(out)
