"""Optimisers (SGD, Adam) and learning-rate schedules.

An optimiser holds a list of Parameters and updates their ``.data`` in place from their
``.grad``, on raw arrays: no graph is built, nothing leaves the device, and the learning rate is a
Python float, so a step never synchronises with a GPU. Its per-parameter state (momentum buffers,
Adam moments) is created on the first step, on the parameter's device.

The canonical loop, as in PyTorch::

    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    sched = optim.MultiStepLR(opt, milestones=[15000, 22000], gamma=0.1)
    for it in range(30000):
        opt.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        opt.step()          # update number ``it`` uses lr = sched.lr_at(it)
        sched.step()        # sets opt.lr = sched.lr_at(it + 1)

Schedules count *iterations* (updates), as Caffe and the paper do, not epochs. ``opt.lr`` is a
plain attribute: a training loop may also set it directly, ``opt.lr = sched.lr_at(it)``.

Two conventions for SGD with momentum (``g`` the gradient, ``w`` the weight, ``m`` the
momentum, ``wd`` the weight decay, ``v`` the momentum buffer starting at 0):

* PyTorch (default):                 ``d = g + wd*w;  v = m*v + d;        w = w - lr*v``
  with Nesterov (``nesterov=True``): ``d = g + wd*w;  v = m*v + d;        w = w - lr*(d + m*v)``
* Caffe (``caffe_style=True``):      ``d = g + wd*w;  v = m*v + lr*d;     w = w - v``

The two agree while ``lr`` is constant (Caffe's ``v`` is ``lr`` times PyTorch's) and differ
after ``lr`` changes: Caffe's buffer still carries steps taken with the old ``lr``. The paper's
experiments ran in Caffe (docs/released-code.md); with the "inv" schedule of its IMDB network the
difference is tiny, with the /10 steps of its CIFAR runs it lasts a few dozen iterations.
"""

import bisect
import math
from collections.abc import Iterable
from typing import Any

from . import backend
from .nn.module import copy_to
from .tensor import Tensor


class Optimizer:
    """Base class: a list of parameters, a learning rate ``lr``, per-parameter ``state`` dicts."""

    hyperparameters: tuple[str, ...] = ("lr",)  # saved by state_dict, with the per-parameter state

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad or not p.is_leaf:
                raise TypeError(f"{type(self).__name__}: parameter {i} is not a leaf tensor with "
                                f"requires_grad=True (got {type(p).__name__})")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{type(self).__name__}: a parameter appears more than once")
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: lr must be >= 0, got {lr}")
        self.lr = lr
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        """Forget the gradients (``grad = None``)."""
        for p in self.params:
            p.grad = None

    def step(self):
        raise NotImplementedError

    def _buffer(self, state, name, p):
        """The state array ``name`` of parameter ``p``, zeros on its device at first use."""
        buf = state.get(name)
        if buf is None:
            buf = state[name] = backend.get_array_module(p.data).zeros_like(p.data)
        return buf

    # --- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"type", "hyperparameters", "state"}``; ``state[i]`` is parameter ``i``'s dict of
        arrays (on its device, not copied) and counters (ints)."""
        return {"type": type(self).__name__,
                "hyperparameters": {k: getattr(self, k) for k in self.hyperparameters},
                "state": [dict(s) for s in self.state]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by :meth:`state_dict` (arrays of any device,
        copied onto each parameter's device and dtype)."""
        name = type(self).__name__
        if state_dict.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: the state is of a {state_dict.get('type')}")
        states = state_dict["state"]
        if len(states) != len(self.params):
            raise ValueError(f"{name}.load_state_dict: the state has {len(states)} parameters, "
                             f"this optimiser {len(self.params)}")
        loaded = []
        for i, (p, saved) in enumerate(zip(self.params, states)):
            state = {}
            for key, value in saved.items():
                if isinstance(value, Tensor):
                    value = value.data
                if backend.is_array(value):
                    if tuple(value.shape) != tuple(p.shape):
                        raise ValueError(f"{name}.load_state_dict: state {key!r} of parameter {i} "
                                         f"has shape {tuple(value.shape)}, the parameter {p.shape}")
                    value = copy_to(value, p.device, p.dtype)
                state[key] = value
            loaded.append(state)
        for key, value in state_dict["hyperparameters"].items():
            setattr(self, key, tuple(value) if isinstance(value, list) else value)
        self.state = loaded

    def to(self, device):
        """Move the state to ``device`` (after ``model.to(device)`` on a model already trained)."""
        for state in self.state:
            for key, value in state.items():
                if backend.is_array(value):
                    state[key] = backend.to_device(value, device)
        return self


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

    ``SGD(params, lr, momentum=0, weight_decay=0, nesterov=False, caffe_style=False)``; the
    update rules are in the module docstring (PyTorch's ``torch.optim.SGD`` with
    ``dampening=0``, or Caffe's SGDSolver). Without momentum both are ``w = w - lr*(g + wd*w)``.
    """

    hyperparameters = ("lr", "momentum", "weight_decay", "nesterov", "caffe_style")

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False,
                 caffe_style: bool = False) -> None:
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: momentum and weight_decay must be >= 0, got {momentum}, "
                             f"{weight_decay}")
        if nesterov and (momentum <= 0 or caffe_style):
            raise ValueError("SGD: nesterov=True needs momentum > 0 and the PyTorch convention "
                             "(caffe_style=False)")
        self.momentum, self.weight_decay = momentum, weight_decay
        self.nesterov, self.caffe_style = nesterov, caffe_style

    def step(self):
        lr, m, wd = self.lr, self.momentum, self.weight_decay
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            d = p.grad.data
            if wd:
                d = d + wd * p.data
            if not m:
                p.data -= lr * d
                continue
            v = self._buffer(state, "momentum_buffer", p)
            v *= m
            if self.caffe_style:
                v += lr * d
                p.data -= v
            else:
                v += d
                p.data -= lr * (d + m * v) if self.nesterov else lr * v


class Adam(Optimizer):
    """Adam (Kingma and Ba), with L2 weight decay added to the gradient as in SGD.

    ``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, caffe_style=False)``.
    With ``d = g + wd*w``, ``t`` the parameter's step count (1 at the first step) and ``m``,
    ``s`` starting at 0::

        m = b1*m + (1 - b1)*d
        s = b2*s + (1 - b2)*d**2
        PyTorch (default):     w = w - lr * (m / (1 - b1**t)) / (sqrt(s / (1 - b2**t)) + eps)
        Caffe (caffe_style):   w = w - lr * sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(s) + eps)

    ``eps`` is what the paper's Table 7 calls delta (Caffe's name). The two forms differ only in
    where ``eps`` sits: Caffe's is PyTorch's with ``eps * sqrt(1 - b2**t)``, which matters with
    the large deltas (0.1, 1) of Table 7 during the first few thousand steps.
    """

    hyperparameters = ("lr", "betas", "eps", "weight_decay", "caffe_style")

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, caffe_style: bool = False) -> None:
        super().__init__(params, lr)
        if not all(0 <= b < 1 for b in betas) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be two numbers in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"Adam: eps and weight_decay must be >= 0, got {eps}, {weight_decay}")
        self.betas, self.eps = tuple(betas), eps
        self.weight_decay, self.caffe_style = weight_decay, caffe_style

    def step(self):
        lr, (b1, b2), eps, wd = self.lr, self.betas, self.eps, self.weight_decay
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            xp = backend.get_array_module(p.data)
            d = p.grad.data
            if wd:
                d = d + wd * p.data
            t = state["step"] = state.get("step", 0) + 1
            m = self._buffer(state, "exp_avg", p)
            s = self._buffer(state, "exp_avg_sq", p)
            m *= b1
            m += (1 - b1) * d
            s *= b2
            s += (1 - b2) * (d * d)
            if self.caffe_style:
                p.data -= (lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)) * m / (xp.sqrt(s) + eps)
            else:
                p.data -= (lr / (1 - b1 ** t)) * m / (xp.sqrt(s) / math.sqrt(1 - b2 ** t) + eps)


# ----------------------------------------------------------------------------------------------
# Learning-rate schedules
# ----------------------------------------------------------------------------------------------
class LRScheduler:
    """Sets ``optimizer.lr = lr_at(iteration)``; ``step()`` advances one iteration.

    ``base_lr`` defaults to the optimiser's lr when the schedule is made; ``iteration`` (default
    0) is the index of the next update, so a resumed run passes the iteration it resumes at.
    ``lr_at(it)`` (also ``sched(it)``) is the pure function iteration -> lr.
    """

    def __init__(self, optimizer, base_lr=None, iteration=0):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr if base_lr is None else base_lr
        self.iteration = iteration
        optimizer.lr = self.lr_at(iteration)

    def lr_at(self, it):
        raise NotImplementedError

    def __call__(self, it):
        return self.lr_at(it)

    def step(self):
        self.iteration += 1
        self.optimizer.lr = self.lr_at(self.iteration)

    def state_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "base_lr": self.base_lr, "iteration": self.iteration}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("type") != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state is of a "
                             f"{state_dict.get('type')}")
        self.base_lr, self.iteration = state_dict["base_lr"], state_dict["iteration"]
        self.optimizer.lr = self.lr_at(self.iteration)


class FixedLR(LRScheduler):
    """``lr = base_lr`` (Caffe's "fixed" policy)."""

    def lr_at(self, it):
        return self.base_lr


class MultiStepLR(LRScheduler):
    """``lr = base_lr * gamma ** (number of milestones <= it)``: the paper's CIFAR schedule is
    ``MultiStepLR(opt, [15000, 22000], gamma=0.1)`` (lr 0.1, /10 at 15k and 22k iterations)."""

    def __init__(self, optimizer, milestones, gamma=0.1, base_lr=None, iteration=0):
        self.milestones, self.gamma = sorted(milestones), gamma
        super().__init__(optimizer, base_lr, iteration)

    def lr_at(self, it):
        return self.base_lr * self.gamma ** bisect.bisect_right(self.milestones, it)


class StepLR(LRScheduler):
    """``lr = base_lr * gamma ** floor(it / step_size)``. The paper's video experiment halves
    the lr every 10k iterations: ``StepLR(opt, 10000, gamma=0.5)``."""

    def __init__(self, optimizer, step_size, gamma=0.1, base_lr=None, iteration=0):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, base_lr, iteration)

    def lr_at(self, it):
        return self.base_lr * self.gamma ** (it // self.step_size)


class InvLR(LRScheduler):
    """Caffe's "inv" policy: ``lr = base_lr * (1 + gamma * it) ** -power``. The paper's IMDB
    network uses ``InvLR(opt, gamma=1e-5, power=0.75)`` with base lr 0.01."""

    def __init__(self, optimizer, gamma, power, base_lr=None, iteration=0):
        self.gamma, self.power = gamma, power
        super().__init__(optimizer, base_lr, iteration)

    def lr_at(self, it):
        return self.base_lr * (1 + self.gamma * it) ** -self.power


SCHEDULERS = {"fixed": FixedLR, "constant": FixedLR, "multistep": MultiStepLR, "step": StepLR,
              "inv": InvLR}


def get_scheduler(name, optimizer, **params):
    """A schedule by name, for configs and command lines: "fixed" (or "constant"), "multistep"
    (milestones, gamma), "step" (step_size, gamma), "inv" (gamma, power)."""
    if name not in SCHEDULERS:
        raise ValueError(f"get_scheduler: unknown schedule {name!r}; choose one of {sorted(SCHEDULERS)}")
    return SCHEDULERS[name](optimizer, **params)
