"""Tensor and Function: the whole of reverse-mode autodiff.

A forward pass records a graph. Every op is a :class:`Function`; calling it on tensors runs its
``forward`` on the raw arrays and, when a gradient is wanted, remembers where its inputs came from
(``parents``: the Function that made each input, or the leaf tensor itself). ``loss.backward()``
then sorts the Functions topologically (iteratively, so a graph 10,000 ops deep is fine) and walks
them from the loss back to the leaves, each Function turning the gradient of its output into the
gradients of its inputs with its hand-written ``backward``. Gradients that meet at a tensor used
twice are summed (the multivariate chain rule). Leaves collect theirs in ``.grad``.

Edges point to Functions, not to intermediate tensors, so an intermediate's data is freed as soon
as Python drops it, unless its Function saved it for backward (``save_for_backward``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import backend

if TYPE_CHECKING:  # pragma: no cover
    Operand = Any  # what an operator takes: a Tensor, a Python scalar or an array

_grad_enabled = True
_detect_anomaly = False


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Run a block without recording the graph (evaluation, optimiser updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Inside this block every op checks its output (forward) and the gradients it returns
    (backward) and raises FloatingPointError at the first one that is NaN or inf, naming the op
    and its inputs' shapes: where a diverging run first went wrong. It reads every array back,
    so it is for debugging, not for training runs::

        with td.detect_anomaly():
            loss = model(x).log().sum()     # FloatingPointError: Log produced a non-finite ...
    """
    global _detect_anomaly
    previous, _detect_anomaly = _detect_anomaly, True
    try:
        yield
    finally:
        _detect_anomaly = previous


def _finite(a: Any) -> bool:
    return a.dtype.kind not in "fc" or bool(backend.get_array_module(a).isfinite(a).all())


def _check_finite(fn: Any, what: str, arrays: Any, inputs: Any,
                  inputs_are: str = "inputs") -> None:
    """detect_anomaly's check of one op: ``arrays`` (its output, or the gradients its backward
    returned), with ``inputs`` (what it was given) described in the error."""
    for k, a in enumerate(arrays):
        if a is not None and not _finite(a):
            where = what if len(arrays) == 1 else f"{what} {k}"
            given = ", ".join(f"{tuple(x.shape)}{'' if _finite(x) else ' (non-finite)'}"
                              for x in inputs)
            raise FloatingPointError(f"detect_anomaly: {type(fn).__name__} {where} is non-finite "
                                     f"(NaN or inf); its {inputs_are} had shapes {given}")


class Tensor:
    """An array on a device, with an optional gradient.

    ``Tensor(data, requires_grad=False, dtype=None, device=None)``: ``data`` is a list, a scalar,
    or an array of any device. Host data (lists, NumPy arrays) goes to ``device`` (default: the
    current device); Python floats become float32, as in PyTorch. Arrays already on the target
    device are used as they are, without a copy.
    """

    __array_priority__ = 1000  # `ndarray * Tensor` calls Tensor.__rmul__
    __array_ufunc__ = None

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None,
                 device: str | None = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        here = backend.device_of(data) if backend.is_array(data) else "cpu"
        target = device or (here if here != "cpu" else backend.get_device())
        if not backend.is_array(data) or here != target:
            data = backend.to_device(data, target, dtype)
        elif dtype is not None and data.dtype != dtype:
            data = data.astype(dtype)
        self.data: Any = data
        self.requires_grad = requires_grad
        self.grad: Tensor | None = None
        self.creator: Function | None = None  # the Function that produced this tensor (None: leaf)

    # --- what the array is ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return int(self.data.ndim)

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    # --- Python and NumPy protocols ------------------------------------------------------------
    def __len__(self) -> int:
        """The size of the first dimension, as ``len`` of an array; TypeError for a 0-d tensor."""
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return int(self.data.shape[0])

    def __iter__(self) -> Iterator[Tensor]:
        """The sub-tensors along the first dimension (``x[0]``, ``x[1]``, ...), each an op of the
        graph as ``x[i]`` is; TypeError for a 0-d tensor."""
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """NumPy's ``asarray(t)`` for a tensor on the host ("cpu"): its data, without a copy unless
        ``dtype`` or ``copy=True`` asks for one. A tensor on a device ("cuda", "standin") raises
        TypeError: the copy to the host is explicit, ``t.numpy()``."""
        if self.device != "cpu":
            raise TypeError(f"can't convert a tensor on device {self.device!r} to a NumPy array "
                            "implicitly; copy it to the host first with .numpy()")
        if copy is False and dtype is not None and self.data.dtype != dtype:
            raise ValueError("asarray(tensor, dtype, copy=False): a new dtype needs a copy")
        a = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return a.copy() if copy and a is self.data else a

    def __repr__(self) -> str:
        """PyTorch-like: ``tensor([[1., 2.]], device='cuda', requires_grad=True)``, the device
        shown when it is not "cpu", the dtype when it is not the default float32."""
        body = backend.array_text(self.data, prefix="tensor(")
        extra = []
        if self.device != "cpu":
            extra.append(f"device={self.device!r}")
        if self.dtype.name not in ("float32", "int64"):  # PyTorch's defaults are not shown
            extra.append(f"dtype={self.dtype.name}")
        if self.creator is not None:
            extra.append(f"grad_fn=<{type(self.creator).__name__}>")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return f"tensor({', '.join([body, *extra])})"

    def numpy(self) -> Any:
        """A host NumPy copy of the data (explicit transfer from a GPU)."""
        return backend.to_numpy(self.data)

    def item(self) -> Any:
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def to(self, device: str) -> Tensor:
        """A copy on another device ("cpu", "cuda", "standin"), cut from the graph."""
        return Tensor(self.data, requires_grad=self.requires_grad, device=device)

    # --- reverse mode --------------------------------------------------------------------------
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is the upstream gradient (the cotangent); it may be omitted only for a scalar,
        where it is 1. The graph is freed afterwards unless ``retain_graph=True``.
        """
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward: grad can be omitted only for a scalar output, but this tensor has "
                    f"shape {self.shape}; pass grad= with that shape (e.g. x.backward(xp.ones_like))")
            grad = xp.ones_like(self.data)
        grad = grad.data if isinstance(grad, Tensor) else grad
        if not backend.is_array(grad) or backend.device_of(grad) != self.device:
            grad = backend.to_device(grad, self.device, self.dtype)  # host data passed in by hand
        if grad.shape != self.shape:
            raise ValueError(f"backward: grad has shape {grad.shape}, the tensor has shape {self.shape}")
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if self.creator is None:
            _accumulate(self, grad)
            return

        grads: dict[Function, Any] = {self.creator: grad}
        for fn in _topological_order(self.creator):
            gy = grads.pop(fn)
            if fn.parents is None:
                raise RuntimeError(
                    f"backward: the graph through {type(fn).__name__} was already freed by an "
                    "earlier backward(); call backward(retain_graph=True) the first time, or run "
                    "the forward pass again")
            gxs = fn.backward(gy)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            if _detect_anomaly:
                _check_finite(fn, "backward: the gradient of input", gxs, (gy,),
                              "upstream gradient")
            for parent, gx in zip(fn.parents, gxs):
                if parent is None or gx is None:
                    continue
                if isinstance(parent, Tensor):
                    _accumulate(parent, gx)
                else:
                    # two gradients of one tensor, summed in memory of tinydm's array pool
                    grads[parent] = (backend.add(grads[parent], gx, gx.shape) if parent in grads
                                     else gx)
            if not retain_graph:
                fn.parents, fn.saved = None, None

    # Python's operators and the array methods, attached by tinydm/operators.py (each an op of
    # tinydm/functional/); declared here for type checkers and editors.
    if TYPE_CHECKING:  # pragma: no cover
        def __add__(self, other: Operand) -> Tensor: ...
        def __radd__(self, other: Operand) -> Tensor: ...
        def __sub__(self, other: Operand) -> Tensor: ...
        def __rsub__(self, other: Operand) -> Tensor: ...
        def __mul__(self, other: Operand) -> Tensor: ...
        def __rmul__(self, other: Operand) -> Tensor: ...
        def __truediv__(self, other: Operand) -> Tensor: ...
        def __rtruediv__(self, other: Operand) -> Tensor: ...
        def __neg__(self) -> Tensor: ...
        def __pow__(self, c: float) -> Tensor: ...
        def __matmul__(self, other: Operand) -> Tensor: ...
        def __rmatmul__(self, other: Operand) -> Tensor: ...
        def __getitem__(self, key: Any) -> Tensor: ...
        def exp(self) -> Tensor: ...
        def log(self) -> Tensor: ...
        def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor: ...
        def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor: ...
        def max(self, axis: Any = None, keepdims: bool = False) -> Tensor: ...
        def reshape(self, *shape: Any) -> Tensor: ...
        def transpose(self, *axes: int) -> Tensor: ...
        def flatten(self, start_dim: int = 1) -> Tensor: ...
        @property
        def T(self) -> Tensor: ...


def _accumulate(leaf: Tensor, g: Any) -> None:
    leaf.grad = Tensor(g if leaf.grad is None else leaf.grad.data + g)


def _topological_order(root: Function) -> list[Function]:
    """Functions reachable from ``root``, each after every Function that consumes its output.

    Iterative depth-first search with an explicit stack, so deep graphs cannot hit Python's
    recursion limit.
    """
    order: list[Function] = []
    visited, stack = {root}, [(root, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        stack.append((fn, True))
        for parent in fn.parents or ():
            if isinstance(parent, Function) and parent not in visited:
                visited.add(parent)
                stack.append((parent, False))
    return order[::-1]


class Function:
    """One differentiable op: a node of the graph.

    Subclasses implement ``forward(*arrays) -> array`` and ``backward(gy) -> grad or tuple of
    grads`` (one per input, ``None`` where no gradient flows), both on raw ``xp`` arrays, and keep
    for backward only what it needs, with ``save_for_backward``. ``needs_input_grad`` (a bool per
    input, set before ``forward``) lets backward skip gradients nobody asked for.
    Hyper-parameters go to ``__init__``. Use an op by calling an instance: ``Exp()(x)``; each op
    file also offers the lowercase function, ``exp(x)``.
    """

    # None once backward has freed the graph (typed Any: ops unpack ``self.saved`` directly)
    parents: Any = ()
    saved: Any = ()
    needs_input_grad: tuple[bool, ...] = ()

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved = arrays

    def __call__(self, *inputs: Any) -> Tensor:
        tensors = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
        # Which inputs will get a gradient, known before forward (PyTorch's ctx.needs_input_grad):
        # backward may return None for the others and skip computing it (conv2d's gx of images).
        self.needs_input_grad = tuple(_grad_enabled and t.requires_grad for t in tensors)
        out = Tensor(self.forward(*[t.data for t in tensors]))
        if _detect_anomaly:
            _check_finite(self, "forward: the output", (out.data,), [t.data for t in tensors])
        if any(self.needs_input_grad):
            self.parents = tuple(
                (t.creator or t) if t.requires_grad else None for t in tensors)
            out.requires_grad, out.creator = True, self
        else:
            self.saved = ()  # nothing will call backward: keep nothing alive
        return out

    def forward(self, *xs: Any) -> Any:
        raise NotImplementedError

    def backward(self, gy: Any) -> Any:
        raise NotImplementedError


def as_tensor(x: Any, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor; a Python scalar takes the dtype and device of ``like``."""
    if isinstance(x, Tensor):
        return x
    if like is not None and not backend.is_array(x):
        xp = backend.get_array_module(like.data)
        return Tensor(xp.asarray(x, dtype=like.dtype))
    if like is not None and backend.device_of(x) != like.device:
        raise TypeError(f"an array on device {backend.device_of(x)!r} (shape {x.shape}) was mixed "
                        f"with a tensor on device {like.device!r}; move it with Tensor(x, device=...)")
    return Tensor(x)
