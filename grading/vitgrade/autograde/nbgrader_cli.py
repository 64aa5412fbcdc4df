"""``python -m vitgrade.autograde.nbgrader_cli ARGS``: ``nbgrader ARGS``, 1.5 s of CPU sooner.

nbgrader imports nbformat, which imports jsonschema, which imports ``rfc3987_syntax`` when it is
installed (jupyter-events' format extras pull it in): that package compiles 38 grammars when it is
imported, 1.5-1.7 s of CPU on the 2-core machine, for jsonschema's "iri" format checks, which
nothing nbgrader runs uses (nbformat validates without a format checker). A grading run starts one
nbgrader process per batch and the course's tests dozens: each would pay it. Here it is left out.
"""

from __future__ import annotations

import sys

sys.modules.setdefault("rfc3987_syntax", None)  # jsonschema skips the "iri" checks it alone provides

from nbgrader.apps.nbgraderapp import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
