"""Python's operators on Tensor (``a + b``, ``a @ b``, ``x[i]``, ``x.sum()``, ...): each is an op
of tinydm/functional/ (arithmetic.py, reduction.py, shape.py).

They are attached here rather than in tensor.py because the ops are built on Tensor and
Function: tensor.py imports nothing of functional/, functional/ imports tensor.py, and this
module (imported by ``tinydm/__init__``) joins the two.
"""

from .functional import arithmetic as _A
from .functional import reduction as _R
from .functional import shape as _S
from .tensor import Tensor

_METHODS = {
    "__add__": lambda a, b: _A.add(a, b), "__radd__": lambda a, b: _A.add(a, b),
    "__sub__": lambda a, b: _A.sub(a, b), "__rsub__": lambda a, b: _A.sub(b, a),
    "__mul__": lambda a, b: _A.mul(a, b), "__rmul__": lambda a, b: _A.mul(a, b),
    "__truediv__": lambda a, b: _A.div(a, b), "__rtruediv__": lambda a, b: _A.div(b, a),
    "__neg__": _A.neg, "__pow__": _A.pow,
    "__matmul__": lambda a, b: _A.matmul(a, b), "__rmatmul__": lambda a, b: _A.matmul(b, a),
    "__getitem__": _S.getitem,
    "exp": _A.exp, "log": _A.log, "sum": _R.sum, "mean": _R.mean, "max": _R.max,
    "reshape": _S.reshape, "transpose": _S.transpose, "flatten": _S.flatten,
    "T": property(lambda self: _S.transpose(self)),
}
# setattr: tensor.py declares these for type checkers (under TYPE_CHECKING); here they get bodies.
for _name, _method in _METHODS.items():
    setattr(Tensor, _name, _method)
