"""Lesson 22: the exercises. ``python -m tinydm.exercises`` hands out templates with the backward
rule removed and grades a student's file by float64 finite differences (a random upstream
gradient, edge cases). The library's own ops pass; a template completed correctly passes;
planted mistakes fail with a message naming the case, the input and the error."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinydm import exercises
from tinydm.functional.activation import Softmax
from tinydm.functional.conv import Conv2d
from tinydm.functional.normalization import BatchNorm
from tinydm.losses import CCE, DM

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = {"softmax": Softmax, "batch_norm": BatchNorm, "conv2d": Conv2d, "cce": CCE, "dm": DM}
STUB = '        raise NotImplementedError("write {cls}.backward (see the class docstring)")\n'

# the backward bodies, written into the templates in place of the NotImplementedError
SOLUTIONS = {
    "softmax": """        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))
""",
    "batch_norm": """        shape = (1, -1) + (1,) * (gy.ndim - 2)
        gbeta, ggamma = gy.sum(axis=self.axes), (gy * xhat).sum(axis=self.axes)
        scale = (gamma * s).reshape(shape)
        if not self.training:
            return scale * gy, ggamma, gbeta
        m = gy.size // gy.shape[1]
        gx = scale * (gy - (gbeta.reshape(shape) + xhat * ggamma.reshape(shape)) / m)
        return gx, ggamma, gbeta
""",
    "conv2d": """        xp = get_array_module(gy)
        (n, cout, ho, wo), (kh, kw), p, st = gy.shape, w.shape[2:], self.padding, self.stride
        g = gy.reshape(n, cout, ho * wo)
        gw = xp.einsum("nok,nck->oc", g, cols).reshape(w.shape)
        gcols = xp.matmul(w.reshape(cout, -1).T, g).reshape(n, x.shape[1], kh, kw, ho, wo)
        gxpad = xp.zeros((n, x.shape[1], x.shape[2] + 2 * p, x.shape[3] + 2 * p))
        for i in range(kh):
            for j in range(kw):
                gxpad[:, :, i:i + st * ho:st, j:j + st * wo:st] += gcols[:, :, i, j]
        gx = gxpad[:, :, p:p + x.shape[2], p:p + x.shape[3]]
        return (gx, gw, gy.sum(axis=(0, 2, 3))) if self.has_bias else (gx, gw)
""",
    "cce": """        xp = get_array_module(p)
        n = p.shape[0]
        d = p.copy()
        d[xp.arange(n), y] -= 1
        return gy * d / n, None
""",
    "dm": """        xp = get_array_module(p)
        n = p.shape[0]
        d = p.copy()
        d[xp.arange(n), y] -= 1
        one_minus_p = 1 - p[xp.arange(n), y]
        return gy * (s / (2 * one_minus_p + DM_EPS))[:, None] * d, None
""",
}

# (exercise, the correct line, the planted mistake, what the message must say)
MISTAKES = [
    ("softmax", "        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))\n",
     "        return y * gy\n",   # the subtraction term missing
     r"case 'random logits \(4, 5\), axis -1': the gradient w.r.t. x is wrong: max error"),
    ("batch_norm",
     "        gx = scale * (gy - (gbeta.reshape(shape) + xhat * ggamma.reshape(shape)) / m)\n",
     "        gx = scale * gy\n",   # the mean terms missing: the eval-mode rule in training
     r"case 'training, \(N, C\) = \(6, 3\)': the gradient w.r.t. x is wrong: max error"),
    ("batch_norm", "        gbeta, ggamma = gy.sum(axis=self.axes), (gy * xhat).sum(axis=self.axes)\n",
     "        gbeta, ggamma = gy.sum(axis=self.axes), gy.sum(axis=self.axes)\n",
     r"the gradient w.r.t. gamma is wrong"),
    ("conv2d", "                gxpad[:, :, i:i + st * ho:st, j:j + st * wo:st] += gcols[:, :, i, j]\n",
     "                gxpad[:, :, i:i + st * ho:st, j:j + st * wo:st] = gcols[:, :, i, j]\n",
     r"case '3x3 kernel, stride 1, padding 1, bias': the gradient w.r.t. x is wrong"),
    ("cce", "        return gy * d / n, None\n", "        return gy * d, None\n",   # the mean's 1/N
     r"case 'random logits \(5, 4\)': the gradient w.r.t. z is wrong: max error"),
    ("dm", "        return gy * (s / (2 * one_minus_p + DM_EPS))[:, None] * d, None\n",
     "        return gy * (s / (2 * one_minus_p))[:, None] * d, None\n",   # Eq. 7's guard missing
     r"case 'lam=0.5, beta=8.0, logits like \[-1000, 1\]: p_i -> 0 and p_i = 1, with an ordinary "
     r"row': the gradient w.r.t. z is wrong"),
]


def completed(tmp_path, name, body=None):
    """The template of ``name`` with ``body`` (default: the solution) as its backward."""
    e = exercises.exercise(name)
    text = e.template.read_text()
    stub = STUB.format(cls=e.class_name)
    assert stub in text
    path = tmp_path / f"{name}.py"
    path.write_text(text.replace(stub, body or SOLUTIONS[name]))
    return path


@pytest.mark.parametrize("name", exercises.EXERCISES)
def test_the_librarys_own_op_is_a_reference_solution(name):
    result = exercises.check(name, REFERENCE[name])
    assert result.passed, str(result)


@pytest.mark.parametrize("name", exercises.EXERCISES)
def test_a_template_completed_correctly_passes(tmp_path, name):
    result = exercises.check(name, completed(tmp_path, name))
    assert result.passed, str(result)
    assert str(result).endswith(f"{name}: all cases pass")


@pytest.mark.parametrize("name", exercises.EXERCISES)
def test_a_fresh_template_says_backward_is_missing(tmp_path, name):
    path = exercises.start(name, tmp_path / "work")
    assert path.read_text() == exercises.exercise(name).template.read_text()
    result = exercises.check(name, path)
    assert not result.passed
    assert "backward is not written yet" in str(result)
    with pytest.raises(FileExistsError):
        exercises.start(name, tmp_path / "work")


@pytest.mark.parametrize("name,right,wrong,message", MISTAKES,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MISTAKES)])
def test_planted_mistakes_fail_with_the_right_message(tmp_path, name, right, wrong, message):
    assert right in SOLUTIONS[name]
    result = exercises.check(name, completed(tmp_path, name, SOLUTIONS[name].replace(right, wrong)))
    assert not result.passed
    assert any(re.search(message, m) for m in result.messages), str(result)


def test_the_mistakes_are_found_only_where_they_matter(tmp_path):
    """BN without the mean terms is eval mode's rule: that case still passes; the training
    cases report the max error and the element, yours and the expected value."""
    _, right, wrong, _ = MISTAKES[1]
    result = exercises.check("batch_norm", completed(
        tmp_path, "batch_norm", SOLUTIONS["batch_norm"].replace(right, wrong)))
    by_case = dict(m.split("': ", 1) for m in result.messages[:-1])
    assert by_case["batch_norm, case 'eval mode (running statistics: constants)"] == "ok"
    failed = by_case["batch_norm, case 'training, (N, C) = (6, 3)"]
    assert "at element (" in failed and "yours" in failed and "expected" in failed


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tinydm.exercises", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_command_line(tmp_path):
    listing = run_cli()
    assert listing.returncode == 0
    for name in ("softmax", "batch_norm", "conv2d", "cce", "dm"):
        assert name in listing.stdout
    assert run_cli("--help").returncode == 0 and "check" in run_cli("--help").stdout
    started = run_cli("start", "softmax", str(tmp_path))
    assert started.returncode == 0 and (tmp_path / "softmax.py").is_file()
    assert run_cli("check", "softmax", str(tmp_path / "softmax.py")).returncode == 1
    passed = run_cli("check", "cce", str(completed(tmp_path, "cce")))
    assert passed.returncode == 0 and "cce: all cases pass" in passed.stdout
    missing = run_cli("check", "cce", str(tmp_path / "nothing.py"))
    assert missing.returncode == 2 and "no file" in missing.stderr
    assert run_cli("check", "nonsense", "x.py").returncode == 2   # argparse: an invalid choice
