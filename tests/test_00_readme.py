"""Lesson 0: the README's example runs and says what the README says it prints."""

import re
import subprocess
import sys
from conftest import ROOT, checkout_env

README = ROOT / "README.md"


def test_the_readme_example_trains_and_prints_what_the_readme_claims():
    text = README.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=checkout_env())
    assert out.returncode == 0, out.stderr
    accuracy = float(out.stdout.split(":")[-1])
    claimed = float(re.search(r"It prints (\d\.\d+)", text).group(1))
    assert abs(accuracy - claimed) < 0.01  # a few of 512 examples: BLAS rounding may differ


def test_the_quick_start_has_exactly_two_command_lines():
    block = re.search(r"## Quick start\n\n```bash\n(.*?)```", README.read_text(), re.S).group(1)
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == 2
    assert "examples/imdb_mlp.py" in lines[0] and "pytest" in lines[1]
