"""docs/reliability.md states the hostile-input corpus as the test files hold it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "hostile_corpus.py"


def _module():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import hostile_corpus

        return hostile_corpus
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_the_corpus_artefact_matches_the_test_files():
    fresh = subprocess.run([sys.executable, str(SCRIPT), "--print"], capture_output=True,
                           text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    counts = json.loads(fresh.stdout.strip().splitlines()[-1])
    committed = json.loads((ROOT / "docs" / "reliability" / "corpus.json").read_text())
    assert counts == committed, "run `python benchmarks/hostile_corpus.py` and commit the result"
    assert all(c["cases"] > 0 for c in counts.values())


def test_the_document_table_is_the_artefact():
    corpus = _module()
    committed = json.loads(corpus.ARTEFACT.read_text())
    assert corpus.doc_table(corpus.DOC.read_text()) == corpus.table(committed)
