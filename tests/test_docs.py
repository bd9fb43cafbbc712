"""The docs hold together: every relative link and ``#anchor`` in README.md and docs/**/*.md
points at a file (and a heading) that exists, and every command the README shows starts (its
``--help`` runs)."""

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)=["']([^"']+)["']""", re.I)
HTML_ID = re.compile(r"""<[a-z]+\b[^>]*?\b(?:id|name)=["']([^"']+)["']""", re.I)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


def slug(heading):
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation other than ``-``
    and ``_`` removed, each space a ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"(\*\*|__|\*|~~)", "", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    """Every anchor of a Markdown file: the headings' slugs (the n-th repeat gets ``-n``) and
    the ids of inline HTML."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    seen, found = {}, set()
    for _, heading in HEADING.findall(text):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found | set(HTML_ID.findall(text))


def links(path):
    """The link targets of a Markdown file, outside code."""
    text = INLINE_CODE.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    return LINK.findall(text) + HTML_LINK.findall(text)


def broken_links(path):
    broken = []
    for target in links(path):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor.lower() not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {os.path.relpath(dest, ROOT)})")
    return broken


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(path):
    assert not broken_links(path), f"{path.relative_to(ROOT)}: broken links"


def test_the_slugs_are_githubs():
    assert slug("Quick start") == "quick-start"
    assert slug("Eq. 7: DM's `backward` (the rule)") == "eq-7-dms-backward-the-rule"
    assert slug("CIFAR-10 / ResNet-20") == "cifar-10--resnet-20"
    assert slug("[Results](results.md) of **M**") == "results-of-m"


def readme_commands():
    """``python examples/X.py ...`` (or benchmarks/) and ``python -m MODULE ...`` as the README
    shows them, in code blocks and inline code: (what is run, the line it came from)."""
    text = README.read_text(encoding="utf-8")
    code = [m.group(0) for m in FENCE.finditer(text)] + INLINE_CODE.findall(text)
    found = {}
    for block in code:
        pattern = r"\bpython3?\s+(-m\s+[\w.]+|(?:examples|benchmarks)/[\w/]+\.py)"
        for m in re.finditer(pattern, block):
            found.setdefault(m.group(1), m.group(0))
    return sorted(found.items())


def test_the_readme_shows_commands():
    runs = dict(readme_commands())
    assert "examples/imdb_mlp.py" in runs and "-m pytest" in runs


@pytest.mark.parametrize("what,line", readme_commands(), ids=[w for w, _ in readme_commands()])
def test_each_readme_command_runs_with_help(what, line, tmp_path):
    # Set explicitly, not inherited: this checkout first on the path, a throw-away home, no
    # display, the CPU device, one BLAS thread.
    env = {"PATH": os.pathsep.join([os.path.dirname(sys.executable), os.defpath]),
           "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "MPLBACKEND": "Agg",
           "TINYDM_DEVICE": "cpu", "OMP_NUM_THREADS": "1", "LC_ALL": "C.UTF-8"}
    out = subprocess.run([sys.executable, *what.split(), "--help"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{line} --help failed:\n{out.stderr[-2000:]}"
    assert "usage" in out.stdout.lower(), out.stdout[-2000:]
