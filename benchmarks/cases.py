"""The work that benchmarks/run.py times, once in tinydm and once in PyTorch.

Every case is a function ``make(framework, device, batch)`` returning a zero-argument callable
that does the work once (a whole training step, or one op's forward and backward), built so that
both frameworks do the same arithmetic on the same shapes: same networks (the CIFAR ResNet with
option-A shortcuts, the 100-8-2 MLP), same float32 data, same SGD with momentum and weight decay,
same losses. Inputs are random: speed does not depend on the values.

PyTorch is imported only when a PyTorch case is built, so this file works without it.
"""

import numpy as np

# --- the cases -----------------------------------------------------------------------------------
# (name, batch, {kind: ...}); the layer shapes are those of the CIFAR ResNets: a 3x3 conv on
# 32x32 maps with 3 -> 16 channels, then 16, 32 and 64 channels on 32x32, 16x16 and 8x8 maps,
# the stride-2 convs opening stages 2 and 3.
STEP_CASES = {
    "resnet20": dict(kind="resnet", depth=20, batch=128),
    "resnet56": dict(kind="resnet", depth=56, batch=128),
    "mlp_imdb": dict(kind="mlp", sizes=(100, 8, 2), batch=250),
}

CONV_SHAPES = [  # (Cin, Cout, H=W, stride): every conv of a CIFAR ResNet is one of these
    (3, 16, 32, 1), (16, 16, 32, 1), (16, 32, 32, 2), (32, 32, 16, 1), (32, 64, 16, 2),
    (64, 64, 8, 1),
]
BN_SHAPES = [(16, 32), (32, 16), (64, 8)]  # (C, H=W)
LINEAR_SHAPES = [(128, 64, 10), (250, 100, 8)]  # (N, in, out): ResNet's fc, the MLP's first layer
LOSSES = ["softmax", "cce", "mae", "mse", "gce", "dm"]


def op_cases(batch=128):
    """{name: (kind, params)} of the per-op cases."""
    cases = {}
    for cin, cout, hw, stride in CONV_SHAPES:
        name = f"conv2d {cin}->{cout} {hw}x{hw} s{stride}"
        cases[name] = ("conv", (batch, cin, cout, hw, stride))
    for c, hw in BN_SHAPES:
        cases[f"batch_norm {c}x{hw}x{hw}"] = ("bn", (batch, c, hw))
    cases["relu 16x32x32"] = ("relu", (batch, 16, 32))
    for n, fin, fout in LINEAR_SHAPES:
        cases[f"linear {fin}->{fout} (N={n})"] = ("linear", (n, fin, fout))
    for loss in LOSSES:
        cases[f"{loss} (128x10)"] = ("loss", (loss, 128, 10))
    return cases


def _data(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def _labels(seed, n, classes):
    return np.random.default_rng(seed).integers(0, classes, n)


# --- tinydm ---------------------------------------------------------------------------------------
def tinydm_step(case, device="cpu"):
    """One training step of a STEP_CASES model in tinydm: zero_grad, forward, loss, backward,
    SGD update: a training loop as a user writes it, with the library's defaults."""
    import tinydm
    from tinydm import losses, nn, optim

    tinydm.manual_seed(0)
    with tinydm.backend.device(device):
        if case["kind"] == "resnet":
            model = nn.resnet_cifar(case["depth"])
            x = tinydm.Tensor(_data(1, case["batch"], 3, 32, 32))
            y = tinydm.Tensor(_labels(2, case["batch"], 10))
            opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        else:
            model = nn.MLP(list(case["sizes"]), init="caffe_xavier")
            x = tinydm.Tensor(_data(1, case["batch"], case["sizes"][0]))
            y = tinydm.Tensor(_labels(2, case["batch"], case["sizes"][-1]))
            opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=0.002,
                            caffe_style=True)

    def step():
        opt.zero_grad()
        loss = losses.cce(model(x), y)
        loss.backward()
        opt.step()
    return step


def tinydm_inference(case, device="cpu"):
    """A STEP_CASES ResNet's forward pass in eval mode under ``no_grad``: what the CIFAR
    evaluator runs; None for the MLP (its evaluation is not worth timing)."""
    import tinydm

    if case["kind"] != "resnet":
        return None
    tinydm.manual_seed(0)
    with tinydm.backend.device(device):
        model = tinydm.nn.resnet_cifar(case["depth"])
        x = tinydm.Tensor(_data(1, case["batch"], 3, 32, 32))
    model.eval()

    def forward():
        with tinydm.no_grad():
            model(x)
    return forward


def _layer_op(kind, params, F, T, batch_norm):
    """The conv, bn, relu and linear cases, written once for both frameworks: ``F`` is the
    framework's functional module, ``T(array, grad=True)`` makes its tensors, and
    ``batch_norm(c)`` returns its batch norm ``(x, gamma, beta) -> y`` in training mode with its
    own running statistics (their argument order differs between the frameworks)."""
    if kind == "conv":
        n, cin, cout, hw, stride = params
        x, w = T(_data(1, n, cin, hw, hw), grad=cin != 3), T(_data(2, cout, cin, 3, 3) * 0.1)
        return lambda: F.conv2d(x, w, stride=stride, padding=1)
    if kind == "bn":
        n, c, hw = params
        x = T(_data(1, n, c, hw, hw))
        gamma, beta = T(np.ones(c, np.float32)), T(np.zeros(c, np.float32))
        norm = batch_norm(c)
        return lambda: norm(x, gamma, beta)
    if kind == "relu":
        n, c, hw = params
        x = T(_data(1, n, c, hw, hw))
        return lambda: F.relu(x)
    if kind == "linear":
        n, fin, fout = params
        x, w, b = T(_data(1, n, fin)), T(_data(2, fout, fin)), T(np.zeros(fout, np.float32))
        return lambda: F.linear(x, w, b)
    raise ValueError(kind)


def _forward_backward(fn, T, numel):
    """``run()``: the forward ``fn()`` and its backward, with a fixed random upstream gradient
    of the output's shape (none for a scalar output)."""
    out = fn()
    gy = None if numel(out) == 1 else T(_data(3, *out.shape), grad=False)
    del out

    def run():
        out = fn()
        out.backward(gy)
    return run


def tinydm_op(kind, params, device="cpu"):
    """Forward and backward of one op in tinydm, with a fixed random upstream gradient."""
    import tinydm
    import tinydm.functional as F
    from tinydm import losses

    T = lambda a, grad=True: tinydm.Tensor(a, requires_grad=grad, device=device)  # noqa: E731
    if kind == "loss":
        name, n, c = params
        z, y = T(_data(1, n, c)), T(_labels(2, n, c), grad=False)
        fn = {"softmax": lambda: F.softmax(z), "cce": lambda: losses.cce(z, y),
              "mae": lambda: losses.mae(z, y), "mse": lambda: losses.mse(z, y),
              "gce": lambda: losses.gce(z, y, q=0.7),
              "dm": lambda: losses.dm(z, y, lam=1.0, beta=8.0)}[name]
    else:
        def batch_norm(c):
            rm, rv = T(np.zeros(c, np.float32), False), T(np.ones(c, np.float32), False)
            return lambda x, gamma, beta: F.batch_norm(x, gamma, beta, rm, rv, training=True)
        fn = _layer_op(kind, params, F, T, batch_norm)
    return _forward_backward(fn, T, lambda out: out.size)


# --- PyTorch --------------------------------------------------------------------------------------
def _torch_resnet(depth):
    """He et al.'s CIFAR ResNet with option-A shortcuts, as tinydm.nn.resnet_cifar builds it."""
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.stride, self.extra = stride, cout - cin

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride != 1 else x
            if self.extra:
                shortcut = torch.cat([shortcut, shortcut.new_zeros(
                    shortcut.shape[0], self.extra, *shortcut.shape[2:])], 1)
            return F.relu(out + shortcut)

    blocks = (depth - 2) // 6
    layers = [tnn.Conv2d(3, 16, 3, 1, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU()]
    width = 16
    for out_width, stride in ((16, 1), (32, 2), (64, 2)):
        for b in range(blocks):
            layers.append(Block(width, out_width, stride if b == 0 else 1))
            width = out_width
    layers += [tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(64, 10)]
    return tnn.Sequential(*layers)


def torch_step(case, device="cpu"):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    if case["kind"] == "resnet":
        model = _torch_resnet(case["depth"])
        x, classes = _data(1, case["batch"], 3, 32, 32), 10
        lr, wd = 0.1, 5e-4
    else:
        sizes = case["sizes"]
        model = torch.nn.Sequential(torch.nn.Linear(sizes[0], sizes[1]), torch.nn.ReLU(),
                                    torch.nn.Linear(sizes[1], sizes[2]))
        x, classes = _data(1, case["batch"], sizes[0]), sizes[-1]
        lr, wd = 0.01, 0.002
    model = model.to(device)
    x = torch.from_numpy(x).to(device)
    y = torch.from_numpy(_labels(2, case["batch"], classes)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return step


def torch_inference(case, device="cpu"):
    """The PyTorch counterpart of :func:`tinydm_inference`, under ``torch.no_grad()``."""
    import torch

    if case["kind"] != "resnet":
        return None
    torch.manual_seed(0)
    model = _torch_resnet(case["depth"]).to(device).eval()
    x = torch.from_numpy(_data(1, case["batch"], 3, 32, 32)).to(device)

    def forward():
        with torch.no_grad():
            model(x)
    return forward


def torch_op(kind, params, device="cpu"):
    """The PyTorch counterpart of :func:`tinydm_op`; None where PyTorch has no such op (DM)."""
    import torch
    import torch.nn.functional as F

    def T(a, grad=True):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device).requires_grad_(grad)
    if kind == "loss":
        name, n, c = params
        z, y = T(_data(1, n, c)), torch.from_numpy(_labels(2, n, c)).to(device)

        def p_label():
            return F.softmax(z, dim=1).gather(1, y[:, None])[:, 0]
        fns = {"softmax": lambda: F.softmax(z, dim=1),
               "cce": lambda: F.cross_entropy(z, y),
               "mae": lambda: (2 * (1 - p_label())).mean(),
               "mse": lambda: ((F.softmax(z, dim=1) - F.one_hot(y, c)) ** 2).sum(1).mean(),
               "gce": lambda: ((1 - p_label() ** 0.7) / 0.7).mean()}
        if name not in fns:
            return None
        fn = fns[name]
    else:
        def batch_norm(c):
            rm, rv = torch.zeros(c, device=device), torch.ones(c, device=device)
            return lambda x, gamma, beta: F.batch_norm(x, rm, rv, gamma, beta, training=True)
        fn = _layer_op(kind, params, F, T, batch_norm)
    return _forward_backward(fn, T, lambda out: out.numel())
