"""The op library: one file per op family, each op a Function with a hand-written backward."""

from .arithmetic import (add, concatenate, div, exp, flatten, getitem, log, matmul, max, mean,
                         mul, neg, pow, reshape, sub, sum, transpose, unbroadcast)
from .activation import dropout, log_softmax, relu, softmax
from .linear import linear
from .conv import avg_pool2d, conv2d, global_avg_pool2d, max_pool2d
from .normalization import batch_norm, batch_norm_relu
