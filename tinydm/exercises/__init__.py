"""Exercises: write a backward rule yourself and have it graded.

Each exercise is a template file (``tinydm/exercises/templates/``): one op as tinydm writes it, a
:class:`~tinydm.tensor.Function` with its forward and its docstring (the math), and a backward
that raises ``NotImplementedError``. From the command line::

    python -m tinydm.exercises                      # the list
    python -m tinydm.exercises start softmax .      # copies softmax.py here
    python -m tinydm.exercises check softmax softmax.py

``check`` runs the student's op on a few cases, ordinary inputs and edge cases (logits like
``[-1000, 1]``, ``p_i -> 1``, a nearly constant channel, ...), with a random upstream gradient
``v`` (never 1: with ``v = 1`` softmax's true gradient is 0 and a wrong rule passes), and
compares each input's gradient with float64 central differences of the op's own forward
(:func:`tinydm.gradcheck.numerical_gradient`). DM's backward is not the gradient of its value
(Section 3.2.2), so it is compared with Eq. 7 itself. A failure names the case, the input whose
gradient is wrong, the largest error and where it is.

The library's own ops are the reference solutions: ``check`` passes them (tests/test_22_exercises.py).
"""

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from collections.abc import Callable

import numpy as np

from ..gradcheck import numerical_gradient
from ..losses import DM_EPS
from ..tensor import Tensor

TEMPLATES = Path(__file__).parent / "templates"
ATOL, RTOL = 1e-6, 1e-4    # as tinydm.gradcheck: central differences with eps = 1e-6


@dataclass(frozen=True)
class Case:
    """One graded call: ``run(cls, *tensors) -> Tensor``, with the named float64 inputs that get
    gradients. ``expected(arrays, v)``, when given, returns the exact gradients (DM); otherwise
    they are central differences of ``run``."""
    label: str
    inputs: dict
    run: Callable
    expected: Callable | None = None


@dataclass(frozen=True)
class Exercise:
    name: str
    class_name: str        # the class the student's file must define
    title: str
    cases: Callable        # () -> [Case]

    @property
    def template(self):
        return TEMPLATES / f"{self.name}.py"


def _labels(y):
    return Tensor(np.asarray(y, dtype=np.int64))


def _softmax_cases():
    rng = np.random.default_rng(0)
    return [
        Case("random logits (4, 5), axis -1", {"x": rng.normal(size=(4, 5)) * 2},
             lambda cls, x: cls(axis=-1)(x)),
        Case("random logits (5, 3), axis 0", {"x": rng.normal(size=(5, 3))},
             lambda cls, x: cls(axis=0)(x)),
        Case("logits like [-1000, 1] and a tie at 1000",
             {"x": np.array([[-1000.0, 1.0, 0.0], [1000.0, 1000.0, -5.0]])},
             lambda cls, x: cls(axis=-1)(x)),
        Case("a nearly one-hot row (p -> 1)", {"x": np.array([[30.0, 0.0, -2.0], [0.1, 0.2, 0.3]])},
             lambda cls, x: cls(axis=-1)(x)),
    ]


def _bn_inputs(rng, shape, scale=1.0, offset=0.0):
    c = shape[1]
    return {"x": rng.normal(size=shape) * scale + offset, "gamma": rng.normal(size=c) + 1.0,
            "beta": rng.normal(size=c)}


def _batch_norm_cases():
    rng = np.random.default_rng(1)

    def train(cls, x, gamma, beta):  # batch statistics, no running ones to update
        return cls(None, None, training=True)(x, gamma, beta)
    running = rng.normal(size=2), rng.uniform(0.5, 2.0, size=2)
    return [
        Case("training, (N, C) = (6, 3)", _bn_inputs(rng, (6, 3)), train),
        Case("training, (N, C, H, W) = (3, 2, 2, 3)", _bn_inputs(rng, (3, 2, 2, 3)), train),
        Case("training, a large mean (x ~ 1000)", _bn_inputs(rng, (5, 2), offset=1000.0), train),
        Case("training, a nearly constant channel (var << eps)", _bn_inputs(rng, (6, 2), 1e-4),
             train),
        Case("eval mode (running statistics: constants)", _bn_inputs(rng, (4, 2)),
             lambda cls, x, gamma, beta: cls(*running, training=False)(x, gamma, beta)),
    ]


def _conv_inputs(rng, x_shape, w_shape, bias):
    inputs = {"x": rng.normal(size=x_shape), "w": rng.normal(size=w_shape)}
    if bias:
        inputs["b"] = rng.normal(size=w_shape[0])
    return inputs


def _conv2d_cases():
    rng = np.random.default_rng(2)

    def conv(stride, padding):
        return lambda cls, *t: cls(stride=stride, padding=padding)(*t)
    return [
        Case("3x3 kernel, stride 1, padding 1, bias", _conv_inputs(rng, (2, 2, 5, 5), (3, 2, 3, 3), True),
             conv(1, 1)),
        Case("3x3 kernel, stride 2, no padding, no bias",
             _conv_inputs(rng, (2, 3, 7, 7), (2, 3, 3, 3), False), conv(2, 0)),
        Case("1x1 kernel, bias", _conv_inputs(rng, (1, 2, 4, 4), (3, 2, 1, 1), True), conv(1, 0)),
        Case("2x3 kernel, stride 2, padding 1 (windows overlap unevenly)",
             _conv_inputs(rng, (1, 2, 5, 6), (2, 2, 2, 3), True), conv(2, 1)),
    ]


def _loss_case(label, z, y, make):
    return Case(label, {"z": np.asarray(z, dtype=np.float64)},
                lambda cls, z: make(cls)(z, _labels(y)))


def _cce_cases():
    rng = np.random.default_rng(3)
    return [_loss_case(label, z, y, lambda cls: cls()) for label, z, y in [
        ("random logits (5, 4)", rng.normal(size=(5, 4)) * 2, rng.integers(0, 4, size=5)),
        ("logits [-1000, 1]: p_i -> 0 and p_i -> 1", [[-1000.0, 1.0], [-1000.0, 1.0]], [0, 1]),
        ("a tie, a batch of one", [[0.0, 0.0, 0.0]], [2]),
    ]]


def _dm_expected(lam, beta, y):
    """Eq. 7 with Eq. 12's weight, as released: ``v s_i d_i / (2(1 - p_i) + eps)``, ``1 - p_i``
    summed from the other classes (it would round to 0 as ``1 - p_i``)."""
    def expected(arrays, v):
        z = arrays["z"]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        onehot = np.eye(z.shape[1])[y]
        p_i, one_minus_p = p[np.arange(len(y)), y], (p * (1 - onehot)).sum(axis=1)
        log_w = beta * p_i ** lam * one_minus_p
        s = np.exp(log_w - log_w.max())
        s /= s.sum()
        return {"z": v * (s / (2 * one_minus_p + DM_EPS))[:, None] * (p - onehot)}
    return expected


def _dm_cases():
    rng = np.random.default_rng(4)
    cases = []
    for lam, beta in ((0.5, 8.0), (0.0, 2.0), (1.0, -3.0)):
        for label, z, y in [
                ("random logits (6, 4)", rng.normal(size=(6, 4)) * 2, rng.integers(0, 4, size=6)),
                ("logits like [-1000, 1]: p_i -> 0 and p_i = 1, with an ordinary row",
                 [[-1000.0, 1.0, 0.0], [-1000.0, 40.0, -1000.0], [0.3, -0.2, 0.1]], [0, 1, 2])]:
            y = np.asarray(y)
            case = _loss_case(f"lam={lam}, beta={beta}, {label}", z, y,
                              lambda cls, lam=lam, beta=beta: cls(lam, beta))
            cases.append(Case(case.label, case.inputs, case.run, _dm_expected(lam, beta, y)))
    return cases


EXERCISES = {e.name: e for e in (
    Exercise("softmax", "Softmax", "softmax backward: y (gy - sum gy y)", _softmax_cases),
    Exercise("batch_norm", "BatchNorm", "batch-norm backward, with the batch statistics' terms",
             _batch_norm_cases),
    Exercise("conv2d", "Conv2d", "conv2d via im2col: gW, gb and col2im for gx", _conv2d_cases),
    Exercise("cce", "CCE", "CCE on logits, Eq. 1: dL/dz = (p - e_i) / N", _cce_cases),
    Exercise("dm", "DM", "derivative manipulation, Eq. 7 with Eq. 12's weight", _dm_cases),
)}


def describe():
    """The list of exercises, one a line, for the command line."""
    width = max(map(len, EXERCISES))
    return "\n".join(f"{e.name:<{width}}  {e.title}" for e in EXERCISES.values())


def exercise(name):
    """The :class:`Exercise` called ``name``; ValueError listing the valid names otherwise."""
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; choose one of {', '.join(EXERCISES)}")
    return EXERCISES[name]


def start(name, directory="."):
    """Copy exercise ``name``'s template into ``directory`` (created if needed) as ``NAME.py``
    and return its path; an existing file there is never overwritten (FileExistsError)."""
    target = Path(directory) / exercise(name).template.name
    if target.exists():
        raise FileExistsError(f"{target} exists already; check it, or start in another folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exercise(name).template, target)
    return target


def load(path, class_name):
    """The class ``class_name`` defined by the Python file ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    spec = importlib.util.spec_from_file_location(f"tinydm_exercise_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = getattr(module, class_name, None)
    if found is None:
        raise ValueError(f"{path} defines no class {class_name}")
    return found


@dataclass
class Result:
    """What :func:`check` found: ``passed``, and one message per case (why it failed)."""
    name: str
    passed: bool
    messages: list

    def __str__(self):
        return "\n".join(self.messages)


def _element(index, shape):
    return tuple(int(i) for i in np.unravel_index(index, shape)) if shape else ()


def _grade_case(e, cls, case, seed):
    """None if ``cls`` passes ``case``, else the message saying what is wrong."""
    where = f"{e.name}, case '{case.label}'"
    tensors = {k: Tensor(np.array(a, dtype=np.float64), requires_grad=True)
               for k, a in case.inputs.items()}
    try:
        out = case.run(cls, *tensors.values())
    except Exception as err:  # a student's forward may fail in any way: report it
        return f"{where}: forward raised {type(err).__name__}: {err}"
    v = np.random.default_rng(seed).standard_normal(out.shape)
    try:
        # a wrong rule may divide by 0: the check below names the non-finite gradient instead
        with np.errstate(all="ignore"):
            out.backward(v)
    except NotImplementedError:
        return f"{where}: {e.class_name}.backward is not written yet (it raises NotImplementedError)"
    except Exception as err:
        return f"{where}: backward raised {type(err).__name__}: {err}"
    exact = case.expected(case.inputs, v) if case.expected else None
    for name, t in tensors.items():
        if exact is not None:
            expected, how = exact[name], "Eq. 7"
        else:
            expected = numerical_gradient(lambda: case.run(cls, *tensors.values()), t, v)
            how = "central differences of the forward"
        if t.grad is None:
            return f"{where}: backward returned no gradient for {name}"
        yours = np.asarray(t.grad.numpy(), dtype=np.float64)
        if yours.shape != expected.shape:
            return (f"{where}: the gradient w.r.t. {name} has shape {yours.shape}, expected "
                    f"{expected.shape} (the shape of {name})")
        error = np.abs(yours - expected)
        excess = error - (ATOL + RTOL * np.abs(expected))
        if not np.isfinite(yours).all() or (excess > 0).any():
            k = int(np.argmax(np.where(np.isfinite(excess), excess, np.inf)))
            at = _element(k, yours.shape)
            return (f"{where}: the gradient w.r.t. {name} is wrong: max error "
                    f"{float(error.reshape(-1)[k]):.3g} at element {at}: yours "
                    f"{float(yours.reshape(-1)[k]):.6g}, expected {float(expected.reshape(-1)[k]):.6g} "
                    f"({how}, upstream gradient random)")
    return None


def check(name, path_or_class):
    """Grade exercise ``name``: ``path_or_class`` is the student's file (or the class itself).
    Returns a :class:`Result`; every case is run and reported."""
    e = exercise(name)
    cls = path_or_class if isinstance(path_or_class, type) else load(path_or_class, e.class_name)
    messages, passed = [], True
    for seed, case in enumerate(e.cases()):
        problem = _grade_case(e, cls, case, seed)
        passed &= problem is None
        messages.append(problem or f"{e.name}, case '{case.label}': ok")
    verdict = "all cases pass" if passed else "not yet: see the cases above"
    return Result(name, passed, messages + [f"{e.name}: {verdict}"])
