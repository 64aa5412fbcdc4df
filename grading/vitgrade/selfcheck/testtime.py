"""Where the test command's time goes: per week and per part of the machinery, from its JUnit report.

``python3 course.py test --junitxml=build/tests.xml`` writes one ``<testcase>`` per test with its
time (setup, call and teardown together: a module fixture's cost lands on its module's first test).
:func:`table` sums them into

* the **machinery**: parts whose cost must not grow with the number of weeks (the zoo, the nbgrader
  pipeline, notebook repair, limits and sandboxes, determinism, README commands, ...), each a set
  of test modules (:data:`PARTS`);
* the **weeks**: each week's ``vitgrade verify``, reference notebook and student notebook on the
  stubs (the tests parametrized by week number), plus its own test modules (:data:`WEEK_MODULES`).

The sums are lane-seconds: with W pytest workers the wall time is about their total over W when the
lanes are balanced (the longest modules start first, tests/course/conftest.py).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

# Machinery part -> the test modules that exercise it.
PARTS = {
    "zoo (both paths, bystanders)": ("test_zoo",),
    "nbgrader pipeline": ("test_nbgrader_pipeline",),
    "notebook repair": ("test_notebook_repair",),
    "limits, sandbox, kernels, temp folder": ("test_limits", "test_sandbox", "test_tempdir", "test_warm_kernel"),
    "determinism": ("test_determinism",),
    "README and release commands": ("test_readme_commands", "test_release", "test_check"),
    "generated files, text, lint, import rule": ("test_generated", "test_text_matches_package", "test_lint",
                                                 "test_import_rule", "test_ci"),
    "course package (data, checks, profiling)": ("test_data", "test_notebook_helpers", "test_profiling"),
}
# Tests parametrized by week number: module -> column of the week table.
PER_WEEK = {"test_verify": "verify", "test_notebooks": "reference notebook",
            "test_student_notebooks": "student notebook"}
# A week's own test modules.
WEEK_MODULES = {"test_week3_notebook": 3, "test_course_runs": 3, "test_train_command": 3, "test_week7_models": 7,
                "test_shapes_models": 6,  # the shape scenes and models of Weeks 6-8
                "test_archaeology": 8, "test_demo": 8}
WEEK_PARAM = re.compile(r"\[(?:week)?(\d+)\]$")


def read(report: Path) -> list[tuple[str, str, float]]:
    """(module, test name, seconds) for every test case of a JUnit report."""
    cases = []
    for case in ET.parse(report).getroot().iter("testcase"):
        parts = case.get("classname", "").split(".")
        module = next((p for p in reversed(parts) if p.startswith("test_")), parts[-1] if parts else "")
        cases.append((module, case.get("name", ""), float(case.get("time") or 0)))
    return cases


def table(report: Path, workers: int = 2, wall: float | None = None) -> tuple[list[str], dict]:
    """The printed lines and the figures (JSON) of the report's time table."""
    cases = read(report)
    total = sum(t for _, _, t in cases)
    parts: dict[str, float] = defaultdict(float)
    week_cols: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    other: dict[str, float] = defaultdict(float)
    for module, name, seconds in cases:
        part = next((p for p, modules in PARTS.items() if module in modules), None)
        found = WEEK_PARAM.search(name)
        if part:
            parts[part] += seconds
        elif module in PER_WEEK and found:
            week_cols[int(found[1])][PER_WEEK[module]] += seconds
        elif module in WEEK_MODULES:
            week_cols[WEEK_MODULES[module]]["own tests"] += seconds
        else:
            other[module] += seconds
    machinery = sum(parts.values())
    weeks_total = sum(sum(c.values()) for c in week_cols.values())
    rest = sum(other.values())
    lines = [f"test command: {len(cases)} tests, {total:.0f} lane-s in all"
             + (f", {wall:.0f} s of wall on {workers} workers" if wall else f" (about {total / workers:.0f} s of "
                f"wall on {workers} balanced workers)"), "",
             f"{'machinery part':<40} {'lane-s':>7} {'share':>6}"]
    for part, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        lines.append(f"{part:<40} {seconds:>7.0f} {seconds / total:>6.0%}")
    lines.append(f"{'machinery, all':<40} {machinery:>7.0f} {machinery / total:>6.0%}")
    lines += ["", f"{'week':<6} {'verify':>7} {'ref nb':>7} {'stub nb':>7} {'own':>6} {'lane-s':>7} "
              f"{'wall share':>10}"]
    for number in sorted(week_cols):
        c = week_cols[number]
        row = sum(c.values())
        lines.append(f"{number:<6} {c['verify']:>7.0f} {c['reference notebook']:>7.0f} {c['student notebook']:>7.0f} "
                     f"{c['own tests']:>6.0f} {row:>7.0f} {row / workers:>10.0f}")
    lines.append(f"{'weeks':<6} {'':>7} {'':>7} {'':>7} {'':>6} {weeks_total:>7.0f} {weeks_total / workers:>10.0f}")
    lines += ["", f"{'other modules':<40} {rest:>7.0f} {rest / total:>6.0%}"]
    for module, seconds in sorted(other.items(), key=lambda kv: -kv[1])[:8]:
        lines.append(f"  {module:<38} {seconds:>7.0f}")
    figures = {"tests": len(cases), "lane_s": round(total, 1), "wall_s": wall, "workers": workers,
               "machinery": {k: round(v, 1) for k, v in parts.items()},
               "weeks": {n: {k: round(v, 1) for k, v in c.items()} for n, c in week_cols.items()},
               "other": {k: round(v, 1) for k, v in other.items()}}
    return lines, figures
