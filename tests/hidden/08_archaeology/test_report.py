"""Week 8 hidden tests, Task 8.3: the report's contents, read from the notebook the student submitted.

The judge reads the notebook's saved outputs (``vitgrade.hidden.submitted_notebook``): nothing in it runs,
and nothing here is computed in the student's process. What counts:

* a **section** is the cells from a Markdown heading ``## N. Title`` to the next such heading; the report's
  sections are found by their titles (below);
* a **figure** NAME is an ``image/png`` output (displayed or a cell's result) whose output metadata names it,
  ``{"report": {"figure": NAME}}`` (what the notebook's ``figure()`` shows), and whose data is a PNG of at
  least 64 x 64 pixels;
* a **table** NAME is a ``text/markdown`` output whose metadata names it, ``{"report": {"table": NAME}}``
  (``table()``), holding a Markdown table: a header row, a ``|---|`` row and at least one row, with the
  columns the checks below read;
* the head ranking lists every (block, head) of the ViT exactly once, blocks and heads as the settings table
  of the Method section gives them; the taxonomy table's ``group`` column has the three failure groups.

``vitcourse.archaeology.check_report`` checks the run folder's files for the student's own feedback; these
tests decide the points.
"""

import base64
import re
import struct

import pytest

from vitgrade.hidden import submitted_notebook

# Section title -> what it shows: ("figure" | "table", name).
REPORT = {
    "Introduction": [("table", "accuracy")],
    "Method": [("table", "settings")],
    "Quantitative results": [("table", "attention_by_layer"), ("figure", "attention_by_layer"),
                             ("table", "significance"), ("table", "head_ranking")],
    "Qualitative results": [("figure", "attention_progression"), ("figure", "heads_gallery"),
                            ("figure", "head_specialisation"), ("table", "head_specialisation")],
    "ViT vs CNN": [("figure", "comparisons")],
    "Adversarial forensics": [("figure", "robustness_curves"), ("table", "robustness"),
                              ("figure", "adversarial_attention"), ("table", "adversarial_attention")],
    "Failure taxonomy": [("table", "taxonomy"), ("figure", "failure_examples")],
}
GROUPS = ("only the ViT wrong", "only the CNN wrong", "both wrong")
MIN_PIXELS = 64
HEADING = re.compile(r"^##\s+(\d+)\.\s*(.+?)\s*$", re.MULTILINE)
RUN_IT = ("run the notebook top to bottom (the excavation, section 3, then every report cell), save it, and "
          "submit it without clearing its outputs")


# ---------------------------------------------------------------- reading the notebook
def sections() -> dict[str, list]:
    """Section title -> the outputs of the code cells under its heading; fails when nothing was saved."""
    nb = submitted_notebook()
    found: dict[str, list] = {}
    current = None
    any_output = False
    for cell in nb.cells:
        if cell.get("cell_type") == "markdown":
            heading = HEADING.search(cell.get("source", ""))
            if heading:
                current = heading.group(2)
                found.setdefault(current, [])
            continue
        outputs = [o for o in cell.get("outputs", []) if isinstance(o, dict)]
        any_output = any_output or bool(outputs)
        if current is not None and cell.get("cell_type") == "code":
            found[current].extend(outputs)
    assert any_output, f"your notebook has no saved outputs: {RUN_IT}"
    return found


def section(found: dict[str, list], title: str) -> list:
    for heading, outputs in found.items():
        if heading.lower().startswith(title.lower()):
            return outputs
    raise AssertionError(f"your notebook has no section '{title}' (a heading '## N. {title}'): keep the report's "
                         f"section headings")


def named(outputs: list, kind: str, name: str) -> list:
    return [o for o in outputs if isinstance(o.get("metadata"), dict)
            and isinstance(o["metadata"].get("report"), dict) and o["metadata"]["report"].get(kind) == name]


def png_size(output) -> tuple[int, int] | None:
    """(width, height) of the output's PNG, None when it has none or it is not a PNG."""
    data = output.get("data", {}).get("image/png") if isinstance(output.get("data"), dict) else None
    if isinstance(data, list):
        data = "".join(data)
    if not isinstance(data, str):
        return None
    try:
        raw = base64.b64decode("".join(data[:200].split())[:64])  # some writers wrap base64 lines
    except ValueError:
        return None
    if raw[:8] != b"\x89PNG\r\n\x1a\n" or raw[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", raw[16:24])


def markdown_table(output) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of the first Markdown table in the output's text/markdown, None without one."""
    text = output.get("data", {}).get("text/markdown") if isinstance(output.get("data"), dict) else None
    if isinstance(text, list):
        text = "".join(text)
    if not isinstance(text, str):
        return None
    lines = [line.strip() for line in text.splitlines()]
    for i in range(len(lines) - 1):
        if lines[i].startswith("|") and re.fullmatch(r"\|(\s*:?-{3,}:?\s*\|)+", lines[i + 1]):
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            rows = []
            for line in lines[i + 2:]:
                if not line.startswith("|"):
                    break
                rows.append([c.strip() for c in line.strip("|").split("|")])
            return header, rows
    return None


def shown_table(found: dict[str, list], title: str, name: str) -> tuple[list[str], list[list[str]]]:
    """The table ``name`` of section ``title``, or the test fails saying what is missing."""
    for output in named(section(found, title), "table", name):
        table = markdown_table(output)
        if table is not None and table[1]:
            return table
    raise AssertionError(f"section '{title}' shows no table {name} (a Markdown table with rows, from "
                         f"table('{name}')): {RUN_IT}")


def column(table: tuple[list[str], list[list[str]]], name: str, what: str) -> list[str]:
    header, rows = table
    assert name in header, f"the {what} table has no column '{name}' (its columns: {', '.join(header)[:120]})"
    k = header.index(name)
    return [row[k] if k < len(row) else "" for row in rows]


def setting(table: tuple[list[str], list[list[str]]], name: str) -> int:
    values = [v for k, v in zip(column(table, "setting", "settings"), column(table, "value", "settings")) if k == name]
    assert values, f"the settings table (section 'Method') has no row '{name}': {RUN_IT}"
    try:
        return int(values[0])
    except ValueError:
        raise AssertionError(f"the settings table's '{name}' is {values[0][:40]!r}, not a whole number") from None


# ---------------------------------------------------------------- Task 8.3
@pytest.mark.task("8.3", points=2)
def test_report_shows_every_figure():
    found = sections()
    missing, not_images = [], []
    for title, items in REPORT.items():
        outputs = section(found, title)
        for kind, name in items:
            if kind != "figure":
                continue
            shown = named(outputs, "figure", name)
            sizes = [png_size(o) for o in shown]
            if not shown:
                missing.append(f"{name} ({title})")
            elif not any(s and min(s) >= MIN_PIXELS for s in sizes):
                not_images.append(f"{name} ({title})")
    assert not missing, f"figures not shown in their sections: {', '.join(missing)}; {RUN_IT}"
    assert not not_images, (f"figures shown without a picture of at least {MIN_PIXELS} x {MIN_PIXELS} pixels (an "
                            f"image/png output): {', '.join(not_images)}")


@pytest.mark.task("8.3", points=2)
def test_report_shows_every_table():
    found = sections()
    missing = []
    for title, items in REPORT.items():
        outputs = section(found, title)
        for kind, name in items:
            if kind == "table" and not any((t := markdown_table(o)) is not None and t[1]
                                           for o in named(outputs, "table", name)):
                missing.append(f"{name} ({title})")
    assert not missing, (f"tables not shown in their sections as Markdown tables with rows: {', '.join(missing)}; "
                         f"{RUN_IT}")


@pytest.mark.task("8.3", points=1)
def test_head_ranking_lists_every_head_once():
    found = sections()
    settings = shown_table(found, "Method", "settings")
    blocks, heads = setting(settings, "ViT blocks"), setting(settings, "ViT heads per block")
    assert blocks > 0 and heads > 0, f"the settings table says {blocks} blocks of {heads} heads"
    ranking = shown_table(found, "Quantitative results", "head_ranking")
    listed = []
    for block, head in zip(column(ranking, "block", "head ranking"), column(ranking, "head", "head ranking")):
        try:
            listed.append((int(block), int(head)))
        except ValueError:
            raise AssertionError(f"the head ranking has a row with block {block[:20]!r}, head {head[:20]!r}: "
                                 "not whole numbers") from None
    every = {(b, h) for b in range(1, blocks + 1) for h in range(1, heads + 1)}
    twice = sorted({p for p in listed if listed.count(p) > 1})
    absent = sorted(every - set(listed))
    foreign = sorted(set(listed) - every)
    assert not (twice or absent or foreign), (
        f"the head ranking lists {len(listed)} rows for a ViT of {blocks} x {heads} = {len(every)} heads: "
        + "; ".join(part for part in (
            f"missing (block, head) {absent[:6]}{' ...' if len(absent) > 6 else ''}" if absent else "",
            f"listed more than once {twice[:6]}" if twice else "",
            f"not heads of this ViT {foreign[:6]}" if foreign else "") if part)
        + ". Show the whole ranking, every head once (table('head_ranking'))")


@pytest.mark.task("8.3", points=1)
def test_taxonomy_has_its_three_groups():
    found = sections()
    taxonomy = shown_table(found, "Failure taxonomy", "taxonomy")
    groups = {g.lower() for g in column(taxonomy, "group", "taxonomy")}
    absent = [g for g in GROUPS if g.lower() not in groups]
    assert not absent, (f"the taxonomy table has no group {', '.join(repr(g) for g in absent)}; it needs all three "
                        f"({', '.join(GROUPS)}), a group without images as a row with 0 images")
