"""vitgrade: the course's build, check, grading and release tool.

Entry point: ``vitgrade`` (see ``vitgrade --help``). The sub-packages follow the process boundary:

* ``weeks``      - the registry: every week's id, modules, tasks and the paths they derive
* ``student/``   - runs *inside* the sandbox, next to the student's code: the worker, its generic
  probes, and the plain-data wire format (the only thing that crosses the boundary)
* ``confine/``   - the boundary itself: OS isolation (``isolate``, ``jail``), the grader's side of
  a sandbox, and the zygote every judge and worker is forked from
* ``judging/``   - grader side: the judge (pytest + the hidden-test API), results, snapshots and
  hashes, ``vitgrade grade``
* ``build/``     - instructor side: stubs and notebooks from the solutions, mutants, submissions,
  ``verify``, the student release, running the reference notebooks
* ``autograde/`` - nbgrader: building assignments, trusted verdicts, the autograde orchestrator
* ``selfcheck/`` - the zoo of broken and hostile submissions, and the throughput benchmark

Students get ``student/``, ``confine/`` and ``judging/`` (for ``vitgrade check``); the rest stays
with the instructor.
"""
