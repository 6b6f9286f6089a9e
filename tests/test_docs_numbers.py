"""Numbers the docs quote are checked against the code, as tests/test_docs_links.py checks links: the size of the
bad-input matrix (in total and per command), the scheme list README's Quickstart prints, and no stale test-suite
size in docs/install.md. A change to the code that makes a quoted number wrong fails here, not in a reader's hands."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import horesnet

ROOT = Path(__file__).resolve().parents[1]


def _matrix() -> Counter:
    """Command lines of tests/test_bad_input_matrix.py per tool, read from its CASES literal (not imported: the
    count must not depend on what that module does at import)."""
    tree = ast.parse((ROOT / "tests" / "test_bad_input_matrix.py").read_text())
    names = {t.id: v.value for node in tree.body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name) and isinstance((v := node.value), ast.Constant)}
    cases = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "CASES" for t in node.targets))
    return Counter(names[v.elts[0].id].removeprefix("horesnet.") for v in cases.values)


def test_docs_quote_the_size_of_the_bad_input_matrix():
    counts = _matrix()
    total = sum(counts.values())
    quoted = {page: [int(n) for n in re.findall(r"(\d+) (?:bad )?command lines", (ROOT / page).read_text())]
              for page in ("docs/training.md", "docs/reliability.md")}
    assert all(quoted.values()), f"no count of the matrix found in {quoted}"
    assert quoted == {page: [total] * len(ns) for page, ns in quoted.items()}, f"the matrix has {total} lines"
    line = next(x for x in (ROOT / "docs/reliability.md").read_text().splitlines() if "test_bad_input_matrix" in x)
    per_tool = {tool: int(n) for n, tool in re.findall(r"(\d+) `(fit|info|analyze|compare)`", line)}
    assert per_tool == dict(counts), f"docs/reliability.md says {per_tool}; the matrix holds {dict(counts)}"


def test_readme_quickstart_prints_every_registered_scheme():
    line = next(x for x in (ROOT / "README.md").read_text().splitlines() if x.startswith("horesnet.list_schemes()"))
    printed = ast.literal_eval(line.split("#", 1)[1].strip())
    assert printed == horesnet.list_schemes()


def test_install_page_quotes_no_stale_suite_size():
    text = (ROOT / "docs" / "install.md").read_text()
    assert not re.search(r"\b\d+ tests in \d+ s\b", text), "a test-suite size in install.md goes stale; measure it " \
        "in a closing note or drop it"
