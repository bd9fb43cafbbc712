"""Module and Parameter: how a model keeps its weights, as in PyTorch.

A :class:`Module` registers what is assigned to it: a :class:`Parameter` (a weight the optimiser
trains), another Module (a submodule), or, through :meth:`Module.register_buffer`, a buffer (a
tensor that is state but not trained, such as BatchNorm's running mean). Registration is what
lets ``parameters()``, ``state_dict()``, ``train()``/``eval()`` and ``to(device)`` walk the whole
model without each layer listing its pieces by hand.

Names are PyTorch's: a parameter's name is the path of attribute names that reaches it,
``"layer1.0.conv1.weight"``, so weights can be compared one to one with a PyTorch model.

Moving between devices: ``model.to("cuda")`` moves every parameter and buffer *in place*: the
Parameter objects stay the same, only their ``.data`` changes device. An optimiser built before
the move therefore still updates the right tensors; its own state (momentum buffers, Adam moments)
is created on first use on the parameters' device, so build the optimiser after moving, or call
``optimizer.to(device)`` as well once it has taken steps (PyTorch gives the same advice).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import backend
from ..tensor import Tensor


class Parameter(Tensor):
    """A trainable tensor: a leaf with ``requires_grad=True`` that a Module registers."""

    def __init__(self, data, requires_grad=True, dtype=None, device=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype, device=device)

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor"):]


def _move(data, device, dtype):
    """``data`` on ``device`` (None: where it is) with ``dtype`` (None: its own); no copy if both
    already hold."""
    here = backend.device_of(data)
    if device is not None and device != here:
        return backend.to_device(data, device, dtype)
    if dtype is not None and data.dtype != dtype:
        return data.astype(dtype)
    return data


def copy_to(data, device, dtype):
    """A copy of ``data`` (an array of any device) on ``device`` with ``dtype``; never shares
    memory with ``data``, so loading state cannot tie two models or optimisers together."""
    moved = _move(data, device, dtype)
    return moved.copy() if moved is data else moved


class Module:
    """Base class of every layer and model. Subclasses set their parts in ``__init__`` (after
    ``super().__init__()``) and define ``forward``; calling the module calls ``forward``."""

    _parameters: dict[str, Any]
    _buffers: dict[str, Any]
    _modules: dict[str, Any]  # Modules
    training: bool

    if TYPE_CHECKING:  # pragma: no cover
        # attributes registered at run time (submodules, buffers): any name may be one
        def __getattr__(self, name: str) -> Any: ...

    def __init__(self) -> None:
        # object.__setattr__: these three dicts are the registry itself, not registered values.
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # --- registration --------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning "
                                 f"attribute {name!r}")
        if isinstance(value, (Parameter, Module)):
            # A name is one kind at a time: a new registration replaces any older one.
            for registry in (self._parameters, self._buffers, self._modules):
                registry.pop(name, None)
            (self._parameters if isinstance(value, Parameter) else self._modules)[name] = value
        elif name in self._buffers:
            if not (value is None or isinstance(value, Tensor)):
                raise TypeError(f"{type(self).__name__}: buffer {name!r} must be a Tensor or None, "
                                f"got {type(value).__name__}")
            self._buffers[name] = value
        else:  # a plain value (e.g. ``self.bias = None``) unregisters a parameter or submodule
            self._parameters.pop(name, None)
            self._modules.pop(name, None)
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        """Register ``tensor`` as state that is saved and moved with the model but not trained."""
        if not (tensor is None or isinstance(tensor, Tensor)) or isinstance(tensor, Parameter):
            raise TypeError(f"register_buffer({name!r}): expected a Tensor (not a Parameter) or "
                            f"None, got {type(tensor).__name__}")
        self._buffers[name] = tensor
        object.__setattr__(self, name, tensor)

    # --- calling -------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    # --- walking the tree ----------------------------------------------------------------------
    def named_modules(self, prefix=""):
        """``(name, module)`` for this module (name ``prefix``) and every submodule, depth first."""
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            stack.extend(reversed([(f"{name}.{n}" if name else n, m)
                                   for n, m in module._modules.items()]))

    def modules(self):
        return (m for _, m in self.named_modules())

    def children(self):
        return iter(self._modules.values())

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """``(name, Parameter)`` pairs, in registration order, submodules after a module's own."""
        for prefix, module in self.named_modules():
            for name, p in module._parameters.items():
                yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters())

    def named_buffers(self):
        for prefix, module in self.named_modules():
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{prefix}.{name}" if prefix else name), b

    def buffers(self):
        return (b for _, b in self.named_buffers())

    def num_parameters(self) -> int:
        """How many trainable numbers the model has (the paper's "0.27M" for ResNet-20)."""
        return sum(p.size for p in self.parameters())

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule and on this module (e.g. a custom initialiser)."""
        for module in list(self.modules())[::-1]:
            fn(module)
        return self

    # --- modes ---------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (BatchNorm uses batch statistics, Dropout drops), recursively."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode (BatchNorm uses its running statistics, Dropout is the identity)."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``grad = None``, as PyTorch does by default)."""
        for p in self.parameters():
            p.grad = None

    # --- devices and dtypes --------------------------------------------------------------------
    def to(self, device=None, dtype=None):
        """Move parameters, their gradients and the buffers to ``device`` and/or cast them to
        ``dtype`` (e.g. ``"float64"`` for gradient checks), in place; returns the module.

        The Parameter objects stay the same (see the module docstring about optimisers).
        """
        if device is not None:
            backend.check_device(device)
        for p in self.parameters():
            p.data = _move(p.data, device, dtype)
            if p.grad is not None:
                p.grad = Tensor(_move(p.grad.data, device, dtype))
        for b in self.buffers():
            b.data = _move(b.data, device, dtype if b.dtype.kind == "f" else None)
        return self

    def double(self):
        return self.to(dtype="float64")

    def float(self):
        return self.to(dtype="float32")

    # --- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{name: Tensor}`` for every parameter and buffer, PyTorch's names and layouts.

        The tensors share data with the model (no copy); :mod:`tinydm.checkpoint` writes them to
        a file.
        """
        state = {}
        for prefix, module in self.named_modules():
            for name, t in list(module._parameters.items()) + list(module._buffers.items()):
                if t is not None:
                    state[f"{prefix}.{name}" if prefix else name] = Tensor(t.data)
        return state

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> Any:
        """Copy ``state`` (name -> Tensor or array of any device) into the model's parameters and
        buffers, onto their device and dtype.

        ``strict=True``: a key the model lacks or a model key missing from ``state`` is an error
        naming it; ``strict=False`` skips them and returns ``(missing, unexpected)``. A wrongly
        shaped value is always an error. Nothing is changed unless every check passes.
        """
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing key(s): {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected key(s): {', '.join(unexpected)}")
        values = {}
        for name, target in own.items():
            if name not in state:
                continue
            value = state[name]
            value = value.data if isinstance(value, Tensor) else value
            if not backend.is_array(value):
                value = backend.to_device(value, "cpu")
            if tuple(value.shape) != tuple(target.shape):
                problems.append(f"{name}: shape {tuple(value.shape)} in the state dict, "
                                f"{tuple(target.shape)} in the model")
            values[name] = value
        if problems:
            raise RuntimeError(f"load_state_dict into {type(self).__name__}: " + "; ".join(problems))
        for name, value in values.items():
            own[name].data = copy_to(value, own[name].device, own[name].dtype)
        return missing, unexpected

    # --- printing ------------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        children = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = ([self.extra_repr()] if self.extra_repr() else []) + children
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
