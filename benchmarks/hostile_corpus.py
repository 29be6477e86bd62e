"""Count the hostile-input corpus and write its table into docs/reliability.md.

    python benchmarks/hostile_corpus.py           # rewrite docs/reliability/corpus.json + the table
    python benchmarks/hostile_corpus.py --print   # print the counts as JSON, write nothing

The counts come from pytest's own collection of the corpus files (one row per
family), and hypothesis tests add their configured number of examples, so the
table in the document is what the test files hold; tests/test_reliability_doc.py
fails when they drift apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
ARTEFACT = ROOT / "docs" / "reliability" / "corpus.json"
BEGIN, END = "<!-- corpus:begin -->", "<!-- corpus:end -->"

# family -> test file (relative to the repository root)
FAMILIES = {
    "data files": "tests/data/test_hostile_data.py",
    "run folders and checkpoints": "tests/test_hostile_runs.py",
    "Python API": "tests/test_hostile_api.py",
    "command line": "tests/test_hostile_cli.py",
}


class _Collector:
    """A pytest plugin that keeps the collected items."""

    def __init__(self) -> None:
        self.items: list[pytest.Item] = []

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.items.extend(items)


def _examples(item: pytest.Item) -> int:
    """Examples a hypothesis test runs (its settings' max_examples), 0 for a plain test."""
    function = getattr(item, "obj", None)
    settings = getattr(function, "_hypothesis_internal_use_settings", None)
    is_hypothesis = getattr(function, "is_hypothesis_test", False)
    return int(settings.max_examples) if is_hypothesis and settings is not None else 0


def count() -> dict[str, dict[str, int | str]]:
    """Per family: test file, collected test cases, property-based ones and their examples."""
    collector = _Collector()
    files = [str(ROOT / f) for f in FAMILIES.values()]
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *files],
                       plugins=[collector])  # fmt: skip
    if code != 0:
        raise SystemExit(f"collecting the corpus failed (pytest exit {code})")
    out: dict[str, dict[str, int | str]] = {}
    for family, rel in FAMILIES.items():
        items = [i for i in collector.items if Path(i.path) == ROOT / rel]
        examples = [_examples(i) for i in items]
        out[family] = {
            "file": rel,
            "cases": len(items),
            "property_based": sum(1 for e in examples if e),
            "examples": sum(examples),
        }
    return out


def table(counts: dict[str, dict[str, int | str]]) -> str:
    """The Markdown table of the corpus."""
    rows = ["| family | tests | cases | of which property-based (examples) |",
            "| --- | --- | --- | --- |"]  # fmt: skip
    total = {"cases": 0, "property_based": 0, "examples": 0}
    for family, c in counts.items():
        rows.append(f"| {family} | `{c['file']}` | {c['cases']} | "
                    f"{c['property_based']} ({c['examples']:,}) |")  # fmt: skip
        for key in total:
            total[key] += int(c[key])
    rows.append(f"| **all** | | **{total['cases']}** | "
                f"{total['property_based']} ({total['examples']:,}) |")  # fmt: skip
    return "\n".join(rows)


def doc_table(text: str) -> str:
    """The table between the markers of docs/reliability.md."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--print", action="store_true", help="print the counts, write nothing")
    args = parser.parse_args(argv)
    counts = count()
    if args.print:
        print(json.dumps(counts))
        return 0
    ARTEFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTEFACT.write_text(json.dumps(counts, indent=2) + "\n")
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + table(counts) + "\n" + text[end:])
    print(table(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
