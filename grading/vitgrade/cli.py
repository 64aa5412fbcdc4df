"""vitgrade: check, grade, verify and release the Vision Transformers course.

    vitgrade check 2 [--task 2.3]         # students: public tests of week 2 (one task), with hints
    vitgrade grade 2 SUBMISSION... [--jobs N] [--out DIR]
    vitgrade verify [WEEK...]             # solutions pass, stubs fail, mutants caught, files in sync
    vitgrade sync [--check]               # regenerate stubs, student notebooks, environment.yml
    vitgrade release OUT                  # the student tree, checked for leaks
    vitgrade nbgrader demo [--week N]     # build, autograde the bundled samples, print the gradebook
    vitgrade nbgrader autograde [--week N] [--student ID...]   # autograde submitted/, checked
    vitgrade zoo [--week N] [--path vitgrade|nbgrader|both] [NAME...]   # grade the broken/hostile zoo
    vitgrade zoo --bystanders [--per-batch K] [NAME...]   # harmful entries next to two references
    vitgrade bench [--week N] [--n 100] [--jobs 2] [--path ...]         # throughput of both paths
    vitgrade bench one [WEEK...]          # one submission per week, as typed; with the machine's load
    vitgrade bench tests --report R.xml   # the test command's time per week and per machinery part
    vitgrade notebooks [WEEK...] [--out DIR]   # run the reference notebooks at VIT_SCALE

A week is its number or its id (2 or 02_vit). Where --week is optional it defaults to the first
week of the course (zoo: every week that has one).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from vitgrade import weeks


def instructor(module: str):
    """Import an instructor-only part of the tool, or explain why it is not there."""
    try:
        return importlib.import_module(f"vitgrade.{module}")
    except ModuleNotFoundError:
        raise SystemExit("this command is for instructors: it needs the course repository "
                         "(solutions, hidden tests), not the student release") from None


def week_number(text: str) -> int:
    return weeks.get(text).number


def _check_week(number: int, root: Path, task: str | None) -> tuple[int, int]:
    from vitgrade.judging import judge

    result = judge.run(number, root, "public", copy=False, task=task)
    if result.status != "ok":
        print(f"Could not run the public tests of week {number}: {result.error}")
        return -1, 0
    week = weeks.get(number)
    width = max((len(t.name) for t in result.tests), default=10)
    for task_id in sorted({t.task for t in result.tests}):
        print(f"Task {task_id} · {week.task(task_id).title}")
        for t in (t for t in result.tests if t.task == task_id):
            verdict = "pass" if t.outcome == "passed" else f"FAIL  hint: {t.message}"
            print(f"  {t.name:<{width}}  {verdict}")
    return len(result.failed()), len(result.tests)


def cmd_check(args: argparse.Namespace) -> int:
    root = Path(args.root) if args.root else weeks.STUDENT_PACKAGE.parent
    week = weeks.get(args.week)
    if args.task and args.task not in {t.id for t in week.tasks}:
        raise SystemExit(f"week {week.number} has tasks {[t.id for t in week.tasks]}, not {args.task}")
    print(f"Week {week.number} public tests against {root}/{weeks.PACKAGE}"
          + (f", task {args.task}" if args.task else "") + "\n")
    failed, total = _check_week(week.number, root, args.task)
    if failed < 0:
        return 2
    print()
    if not failed:
        print("Public tests passed; the hidden tests decide the grade.")
        return 0
    print(f"{failed} of {total} public tests failed.")
    # This week imports your earlier weeks' modules: a bug there shows up here first.
    for earlier in (w for w in weeks.WEEKS.values() if w.number < week.number):
        before, _ = _quiet(earlier.number, root)
        if before:
            print(f"Note: {before} public test(s) of Week {earlier.number} also fail on your "
                  f"{', '.join(earlier.modules)}, which this week builds on: fix those first "
                  f"(vitgrade check {earlier.number}). The grader uses the reference Week "
                  f"{earlier.number} code, so that bug costs no points here.")
    return 1


def _quiet(number: int, root: Path) -> tuple[int, int]:
    from vitgrade.judging import judge

    result = judge.run(number, root, "public", copy=False)
    return (len(result.failed()), len(result.tests)) if result.status == "ok" else (0, 0)


def cmd_grade(args: argparse.Namespace) -> int:
    import contextlib
    import os

    from vitgrade.confine import zygote as zygote_mod

    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        own = None
        if not os.environ.get(zygote_mod.ENV):  # the fork server first: it imports while this process prepares
            with contextlib.suppress(OSError, RuntimeError):  # grade_many reports it then
                own = stack.enter_context(zygote_mod.for_week(args.week, wait=False))
        return _grade(args, own, start)


def _grade(args: argparse.Namespace, zygote, start: float) -> int:
    from vitgrade.confine import isolate, scratch
    from vitgrade.judging import grade

    paths = [Path(p) for p in args.submissions]
    out = Path(args.out) if args.out else None
    if isolate.level() == "basic":
        print(isolate.BASIC_WARNING, flush=True)
    print(f"limits: {scratch.describe()}", flush=True)
    run = grade.grade_many(args.week, paths, out, args.jobs, zygote=zygote)
    results = run.results
    for name, result in results.items():
        if len(results) == 1 or args.verbose:
            print(grade.table(result))
        status = "ok" if result.status == "ok" else f"{result.status.upper()}: {result.error}"
        print(f"{name:<32} {result.earned:>6g} / {result.max_points:<6g} {status}")
    seconds = time.monotonic() - start
    print(f"graded {len(results)} submission(s) in {seconds:.1f} s "
          f"({60 * len(results) / max(seconds, 1e-9):.1f} per minute)"
          + (f"; gradebook: {out / 'gradebook.csv'}" if out else ""))
    print(f"isolation: {isolate.level()} ({isolate.describe()})")
    for event in run.events:
        print(f"grader: {event}")
    for name, why in sorted(run.retried.items()):
        print(f"retried {name}: the first attempt gave no verdict ({why})")
    if run.not_graded:
        print(f"NOT GRADED: {len(run.not_graded)} submission(s): {', '.join(run.not_graded)}")
    if run.failed:
        print(f"{len(run.failed)} submission(s) could not be graded cleanly: {', '.join(run.failed)}")
    for left in run.leftovers:
        print(f"LEFTOVER: {left} (removed at the end of the batch)")
    for path in run.tampering:
        print(f"TAMPERING: {path} changed during grading (grades use the snapshots taken before)")
    for problem in run.gradebook_problems:
        print(f"GRADEBOOK INCONSISTENT: {problem}")
    used = "its structure not used for the grade" if weeks.get(args.week).notebook_tasks else "not used for the grade"
    for name, notes in sorted(run.notebooks.items()):
        for note in notes:
            print(f"notebook {name} ({used}): {note}")
    return 0 if run.ok else 1


def cmd_verify(args: argparse.Namespace) -> int:
    verify = instructor("build.verify")
    ok, lines = verify.verify(args.weeks or sorted(weeks.WEEKS), args.jobs)
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_sync(args: argparse.Namespace) -> int:
    generate = instructor("build.generate")
    if args.check:
        stale = generate.stale_files()
        for path in stale:
            print(f"stale: {path}")
        print("generated files are in sync" if not stale else "run `vitgrade sync` and commit")
        return 1 if stale else 0
    for path in generate.write_all():
        print(f"wrote {path}")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    release = instructor("build.release")
    found = release.build_release(Path(args.out))
    for leak in found:
        print(f"LEAK {leak}")
    print(f"release written to {args.out}: " + ("no leaks found" if not found else f"{len(found)} leak(s)"))
    return 1 if found else 0


def cmd_nbgrader(args: argparse.Namespace) -> int:
    nbp = instructor("autograde.pipeline")
    if args.action == "build":
        print(f"release written to {nbp.build(args.week)}")
        return 0
    if args.action == "autograde":
        return _nbgrader_autograde(nbp, args)
    rows, runs = nbp.demo(args.week, args.jobs, progress=lambda line: print(line, flush=True))
    print(f"\n{'student':<32} {'points':>7} {'max':>5}  nbgrader exit  verdict")
    for row in rows:
        run = runs[row["student_id"]]
        verdict = (run.verdict or {}).get("earned", "none")
        print(f"{row['student_id']:<32} {float(row['score']):>7g} {float(row['max_score']):>5g}  "
              f"{run.returncode:<13} {verdict}")
    print()
    for what, path in nbp.demo_locations(args.week):
        print(f"{what + ':':<44} {path}{'' if path.exists() else '  (MISSING)'}")
    failed = [s for s, r in runs.items() if r.returncode != 0 or r.verdict is None]
    for student in failed:
        print(f"autograde failed for {student} (exit {runs[student].returncode}):")
        print(runs[student].output[-1500:])
    missing = [path for _, path in nbp.demo_locations(args.week) if not path.exists()]
    return 1 if failed or missing else 0


def _nbgrader_autograde(nbp, args: argparse.Namespace) -> int:
    """Every submitted student (or --student), one nbgrader process each, with the checks and the
    notebook repairs; exit 1 when anything needs a look."""
    from vitgrade.confine import scratch

    assignment = weeks.get(args.week).assignment
    students = args.student or sorted(p.parent.name for p in (nbp.COURSE / "submitted").glob(f"*/{assignment}"))
    print(f"limits: {scratch.describe()}", flush=True)
    report = nbp.autograde_checked(args.week, students, args.jobs)
    for student, run in sorted(report.runs.items()):
        verdict = run.verdict or {}
        print(f"{student:<32} {verdict.get('earned', 'none')!s:>7} / {verdict.get('max', '-')!s:<5} "
              f"nbgrader exit {run.returncode}  {verdict.get('status', 'not graded')}")
    print("\n".join(report.summary()))
    print(f"report: {nbp.COURSE / '.vitgrade' / 'reports' / (assignment + '.csv')}; "
          + ("nothing needs a look" if report.ok else "NEEDS A LOOK (see above)"))
    return 0 if report.ok else 1


def cmd_zoo(args: argparse.Namespace) -> int:
    import tempfile

    zoo = instructor("selfcheck.zoo")
    problems = 0
    if args.bystanders:
        for number in [args.week] if args.week else zoo.weeks_with_zoo():
            entries = zoo.load(number, args.names or None, bystanders=False, notebooks=True)
            if not zoo.harmful(entries):
                continue
            with tempfile.TemporaryDirectory(prefix="vitgrade-zoo-") as tmp:
                run = zoo.grade_bystanders(number, entries, Path(tmp), args.per_batch,
                                           progress=lambda line: print(line, flush=True))
            lines, found = zoo.bystander_table(number, entries, run)
            print("\n".join(lines))
            problems += found
        print(f"{problems} problem(s)")
        return 1 if problems else 0
    for number in [args.week] if args.week else zoo.weeks_with_zoo():
        entries = zoo.load(number, args.names or None, notebooks=True)
        runs = []
        with tempfile.TemporaryDirectory(prefix="vitgrade-zoo-") as tmp:
            if args.path in ("vitgrade", "both"):
                runs.append(zoo.grade_vitgrade(number, entries, Path(tmp) / "vitgrade", args.jobs))
            if args.path in ("nbgrader", "both"):
                runs.append(zoo.grade_nbgrader(number, entries, Path(tmp) / "nbgrader" / "course", args.jobs))
            lines, found = zoo.table(number, entries, runs)
        print(f"Week {number}")
        print("\n".join(lines))
        problems += found
    print(f"{problems} problem(s)")
    return 1 if problems else 0


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    bench = instructor("selfcheck.bench")
    if args.what == "one":
        results = [bench.one_submission(number, args.repeat) for number in (args.weeks or sorted(weeks.WEEKS))]
        for result in results:
            print(bench.describe_one(result), flush=True)
        out = Path(args.out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench-one.json").write_text(json.dumps(results, indent=1))
        print(f"details: {out / 'bench-one.json'}")
        return 0 if all(r["ok"] for r in results) else 1
    if args.what == "tests":
        testtime = instructor("selfcheck.testtime")
        if not args.report:
            raise SystemExit("bench tests --report R.xml: the JUnit report of "
                             "`python3 course.py test --junitxml=R.xml`")
        lines, _ = testtime.table(Path(args.report), args.workers, args.wall)
        print("\n".join(lines))
        return 0
    paths = ("vitgrade", "nbgrader") if args.path == "both" else (args.path,)
    results = bench.run(args.week, args.n, args.jobs, Path(args.out), paths, answered=not args.release_notebook)
    for r in results:
        if r["path"] == "agreement":
            print(f"both paths agree on every student's points: {not r['disagree']} {r['disagree'][:5]}")
            continue
        mode = f" (notebooks: VITGRADE_EXECUTE={r['execute']}, warm kernels {r['warm_kernels']})" \
            if r["path"] == "nbgrader" else ""
        meter = r["meter"]
        print(f"{r['path']:<9} week {r['week']}, {r['n']} submissions, --jobs {r['jobs']}{mode}: "
              f"{r['seconds']:.0f} s = {r['per_minute']:.1f} submissions/minute; {meter['cpu_s']:.0f} s CPU "
              f"({r['cpu_per_student']:.1f} per "
              f"student); other jobs {meter['busy_before']:.2f} cores before, {meter['others']:.2f} during: "
              f"{'UNDER LOAD' if meter['under_load'] else 'quiet'}; clean: {r['ok']}; "
              f"points as expected: {r['n'] - len(r['unexpected'])}/{r['n']}")
        for line in r["unexpected"]:
            print(f"  UNEXPECTED {line}")
    print(f"details: {Path(args.out).resolve()}/bench-*.json")
    print(json.dumps([{k: v for k, v in r.items() if k not in ("points", "meter")} for r in results])[:2000])
    bad = any(r.get("unexpected") or r.get("disagree") or r.get("ok") is False for r in results)
    return 1 if bad else 0


def cmd_notebooks(args: argparse.Namespace) -> int:
    notebooks = instructor("build.notebooks")
    failed = 0
    for number in args.weeks or sorted(weeks.WEEKS):
        _, seconds, errors = notebooks.execute(number, Path(args.out) if args.out else None)
        print(f"week {number:02d}: {seconds:.1f} s, {len(errors)} error(s)")
        for error in errors:
            print(f"   {error}")
        failed += bool(errors)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vitgrade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    first = min(weeks.WEEKS)

    p = sub.add_parser("check", help="run a week's public tests on your src/ and show hints")
    p.add_argument("week", type=week_number)
    p.add_argument("--task", help="only this task's tests, e.g. 2.3")
    p.add_argument("--root", help="folder holding vitcourse/ (default: the repo's src/)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("grade", help="grade submissions against the hidden tests")
    p.add_argument("week", type=week_number)
    p.add_argument("submissions", nargs="+", help="folders holding vitcourse/ (or src/vitcourse/)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", help="folder for per-student JSON and gradebook.csv/json")
    p.add_argument("-v", "--verbose", action="store_true", help="per-test tables for every submission")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("verify", help="solutions pass, stubs fail, mutants caught, files in sync")
    p.add_argument("weeks", type=week_number, nargs="*")
    p.add_argument("--jobs", type=int, default=2)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("sync", help="regenerate stubs, student notebooks and environment.yml")
    p.add_argument("--check", action="store_true", help="only report stale files")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("release", help="write the student release tree and check it for leaks")
    p.add_argument("out")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("nbgrader", help="nbgrader: build a week, the end-to-end demo, or autograde submitted/")
    p.add_argument("action", choices=["build", "demo", "autograde"])
    p.add_argument("--student", action="append", help="autograde: only this student (repeatable)")
    p.add_argument("--week", type=week_number, default=first)
    p.add_argument("--jobs", type=int, default=2)
    p.set_defaults(func=cmd_nbgrader)

    p = sub.add_parser("zoo", help="grade the zoo of broken and hostile submissions; print the table")
    p.add_argument("names", nargs="*", help="only these entries (default: all)")
    p.add_argument("--week", type=week_number, help="default: every week that has a zoo")
    p.add_argument("--path", choices=["vitgrade", "nbgrader", "both"], default="both")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--bystanders", action="store_true",
                   help="bystander mode: each harmful entry graded in a batch with two copies of the reference")
    p.add_argument("--per-batch", type=int, default=1,
                   help="bystander mode: harmful entries per batch (0: all in one batch)")
    p.set_defaults(func=cmd_zoo)

    p = sub.add_parser("bench", help="measure grading: N generated submissions through both paths (batch), one "
                                      "submission per week (one), the test command's time table (tests)")
    p.add_argument("what", nargs="?", choices=["batch", "one", "tests"], default="batch")
    p.add_argument("weeks", nargs="*", type=week_number, help="one: these weeks (default: all)")
    p.add_argument("--week", type=week_number, default=first, help="batch: the week")
    p.add_argument("--n", type=int, default=100, help="batch: submissions")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--path", choices=["vitgrade", "nbgrader", "both"], default="both")
    p.add_argument("--release-notebook", action="store_true",
                   help="batch, nbgrader: every student submits the release notebook (its run stops at the first "
                        "unanswered cell) instead of the answered one")
    p.add_argument("--repeat", type=int, default=2, help="one: runs per week (the fastest is reported)")
    p.add_argument("--report", help="tests: the JUnit XML of `python3 course.py test --junitxml=REPORT`")
    p.add_argument("--workers", type=int, default=2, help="tests: pytest workers of that run")
    p.add_argument("--wall", type=float, help="tests: that run's wall time in seconds, if known")
    p.add_argument("--out", default="build/bench")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("notebooks", help="execute the reference notebooks at VIT_SCALE")
    p.add_argument("weeks", type=week_number, nargs="*")
    p.add_argument("--out", help="folder for the executed notebooks")
    p.set_defaults(func=cmd_notebooks)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
