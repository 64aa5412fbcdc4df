"""vitgrade: the course's build, check, grading and release tool.

Entry point: ``vitgrade`` (see ``vitgrade --help``). The pieces:

* ``generate``  - stubs and student notebooks from the reference solutions (one source of truth)
* ``mutants``   - the zoo of realistic buggy implementations the hidden tests must catch
* ``sandbox`` / ``worker`` - student code runs in a separate, resource-limited process; the
  checks that decide the score run in the grader's own process and only see plain arrays
* ``judge``     - runs a week's pytest suite against one submission and writes per-test points
* ``nbgrader_pipeline`` - the nbgrader course directory: build, sample submissions, autograde
* ``release``   - the student release tree, checked for leaks
"""
