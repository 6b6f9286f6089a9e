"""The documentation lives in the repository: every relative link in README.md and docs/*.md resolves (the file,
and the heading for ``#anchor`` links, by GitHub's anchor rule), and no file cites a page that is not in the
repository (a design file outside it, a shared reference folder, an issue tracker number)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FORBIDDEN = re.compile(r"DESIGN\.md|\.\./shared|shared/reference|\b[Ii]ssue #?\d+")
SCANNED = (".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".txt")


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    out, in_code = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            out.add(anchor(line.lstrip("#")))
    return out


def test_github_anchor_rule_by_hand():
    assert anchor(" Fair comparisons: residual scale and confounds") == "fair-comparisons-residual-scale-and-confounds"
    assert anchor(" Training: `python -m horesnet.fit`") == "training-python--m-horesnetfit"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, frag = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif frag and dest.suffix == ".md" and frag not in anchors(dest):
            broken.append(f"{target}: no heading #{frag} in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def _repository_files():
    """Every text file of the repository, without hidden folders (.git, .venv), caches and run outputs."""
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "outputs", "multirun")]
        for name in files:
            if name.endswith(SCANNED):
                yield Path(folder) / name


def test_no_file_cites_pages_outside_the_repository():
    hits = []
    for path in sorted(_repository_files()):
        if path == Path(__file__).resolve():
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)
