"""Python's operators on Tensor (``a + b``, ``a @ b``, ``x[i]``, ``x.sum()``, ...): each is an op
of tinydm/functional/arithmetic.py.

They are attached here rather than in tensor.py because the ops are built on Tensor and
Function: tensor.py imports nothing of functional/, functional/ imports tensor.py, and this
module (imported by ``tinydm/__init__``) joins the two.
"""

from .functional import arithmetic as _A
from .tensor import Tensor


Tensor.__add__ = Tensor.__radd__ = lambda a, b: _A.add(a, b)
Tensor.__sub__ = lambda a, b: _A.sub(a, b)
Tensor.__rsub__ = lambda a, b: _A.sub(b, a)
Tensor.__mul__ = Tensor.__rmul__ = lambda a, b: _A.mul(a, b)
Tensor.__truediv__ = lambda a, b: _A.div(a, b)
Tensor.__rtruediv__ = lambda a, b: _A.div(b, a)
Tensor.__neg__ = _A.neg
Tensor.__pow__ = _A.pow
Tensor.__matmul__ = lambda a, b: _A.matmul(a, b)
Tensor.__rmatmul__ = lambda a, b: _A.matmul(b, a)
Tensor.__getitem__ = _A.getitem
Tensor.exp, Tensor.log = _A.exp, _A.log
Tensor.sum, Tensor.mean, Tensor.max = _A.sum, _A.mean, _A.max
Tensor.reshape, Tensor.transpose, Tensor.flatten = _A.reshape, _A.transpose, _A.flatten
Tensor.T = property(lambda self: _A.transpose(self))
