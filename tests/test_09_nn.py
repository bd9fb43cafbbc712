"""Modules and layers: registration and names (PyTorch's), train/eval, state dicts and their
errors, moving between devices, initialisations, BatchNorm in training and evaluation."""

import math

import numpy as np
import pytest

import tinydm as td
import tinydm.functional as F
from conftest import tensor
from tinydm import backend, nn, optim


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.pool = nn.GlobalAvgPool2d()
        self.head = nn.Linear(4, 2)
        self.register_buffer("calls", td.Tensor(np.zeros(1, dtype=np.float32)))

    def forward(self, x):
        return self.head(self.pool(self.features(x)))


NET_PARAMETERS = ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
                  "head.weight", "head.bias"]
NET_STATE = ["calls", "features.0.weight", "features.0.bias", "features.1.weight",
             "features.1.bias", "features.1.running_mean", "features.1.running_var",
             "head.weight", "head.bias"]


# --- registration --------------------------------------------------------------------------------
def test_parameters_buffers_and_submodules_are_registered_with_pytorch_names():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == NET_PARAMETERS
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert [n for n, _ in net.named_buffers()] == ["calls", "features.1.running_mean",
                                                   "features.1.running_var"]
    assert sorted(net.state_dict()) == sorted(NET_STATE)
    assert net.features[0].weight.shape == (4, 3, 3, 3) and net.head.weight.shape == (2, 4)
    assert net.num_parameters() == 4 * 27 + 4 + 4 + 4 + 8 + 2
    assert [n for n, _ in net.named_modules()] == ["", "features", "features.0", "features.1",
                                                   "features.2", "pool", "head"]


def test_reassigning_an_attribute_replaces_its_registration():
    net = Net()
    net.head = nn.Linear(4, 3, bias=False)
    assert [n for n, _ in net.named_parameters()][-1] == "head.weight"
    net.head = None  # a plain value unregisters the submodule
    assert "head.weight" not in dict(net.named_parameters())
    net.calls = td.Tensor(np.ones(1, dtype=np.float32))  # a buffer stays a buffer
    assert float(net.state_dict()["calls"].data[0]) == 1.0
    with pytest.raises(TypeError, match="buffer 'calls'"):
        net.calls = 3


def test_assigning_before_super_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Broken()


def test_sequential_indexing_and_repr():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[2], nn.Linear) and isinstance(seq[-2], nn.ReLU)
    assert len(seq[:2]) == 2 and [type(m) for m in seq] == [nn.Linear, nn.ReLU, nn.Linear]
    text = repr(seq)
    assert "(0): Linear(2, 3, bias=True)" in text and "(1): ReLU()" in text
    with pytest.raises(TypeError, match="Module"):
        seq.append(lambda x: x)


# --- layers compute what their functional op computes ----------------------------------------------
def test_linear_and_flatten(device):
    layer = nn.Linear(3, 2)
    x = td.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    expected = x.numpy() @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6)
    assert layer.weight.device == device
    assert nn.Flatten()(td.Tensor(np.zeros((2, 3, 4, 5), dtype=np.float32))).shape == (2, 60)


def test_conv_and_pooling_layers(device):
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False)
    assert conv.bias is None and [n for n, _ in conv.named_parameters()] == ["weight"]
    x = td.Tensor(np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32))
    np.testing.assert_allclose(conv(x).numpy(), F.conv2d(x, conv.weight, stride=2, padding=1).numpy())
    assert conv(x).shape == (2, 3, 3, 3)
    assert nn.GlobalAvgPool2d()(x).shape == (2, 2)
    assert nn.MaxPool2d(2)(x).shape == nn.AvgPool2d(2)(x).shape == (2, 2, 3, 3)


def test_layers_backpropagate_to_their_parameters(device):
    net = Net().double()
    x = tensor(np.random.default_rng(1).standard_normal((3, 3, 4, 4)), requires_grad=False)
    assert td.gradcheck(lambda *ps: net(x), *net.parameters(), mode="directional")


# --- modes ---------------------------------------------------------------------------------------
def test_train_and_eval_reach_every_submodule(device):
    td.manual_seed(0)
    seq = nn.Sequential(nn.Linear(50, 50), nn.Sequential(nn.Dropout(0.5)))
    assert all(m.training for m in seq.modules())
    assert seq.eval() is seq and not any(m.training for m in seq.modules())
    x = td.Tensor(np.ones((4, 50), dtype=np.float32))
    np.testing.assert_array_equal(seq(x).numpy(), seq[0](x).numpy())  # dropout is the identity
    seq.train()
    dropped = seq[1](x).numpy()
    assert set(np.unique(dropped)) == {0.0, 2.0}  # zeros and survivors scaled by 1 / (1 - p)
    assert 0.3 < (dropped == 0).mean() < 0.7


def test_zero_grad_sets_grads_to_none():
    layer = nn.Linear(2, 2)
    layer(td.Tensor(np.ones((1, 2), dtype=np.float32))).sum().backward()
    assert layer.weight.grad is not None
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


# --- BatchNorm -----------------------------------------------------------------------------------
# One channel, the values 1, 2, 3, 6 over (N, H, W) = (2, 1, 2): batch mean 3, biased variance
# (4 + 1 + 0 + 9) / 4 = 3.5, unbiased variance 14 / 3.
BN_X = np.array([1.0, 2.0, 3.0, 6.0]).reshape(2, 1, 1, 2)


def test_batchnorm_training_normalises_with_batch_statistics_and_updates_running_ones(device):
    bn = nn.BatchNorm2d(1).double()
    y = bn(tensor(BN_X, requires_grad=False)).numpy()
    np.testing.assert_allclose(y, (BN_X - 3.0) / math.sqrt(3.5 + 1e-5), rtol=1e-10)
    # running = 0.9 * running + 0.1 * batch statistic (unbiased variance, as PyTorch)
    np.testing.assert_allclose(bn.running_mean.numpy(), [0.9 * 0 + 0.1 * 3.0], rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), [0.9 * 1 + 0.1 * 14 / 3], rtol=1e-12)
    assert bn.running_mean.creator is None and not bn.running_mean.requires_grad


def test_batchnorm_evaluation_uses_running_statistics_and_leaves_them_alone(device):
    bn = nn.BatchNorm2d(1).double()
    bn.weight.data[...] = 2.0
    bn.bias.data[...] = 0.5
    bn(tensor(BN_X, requires_grad=False))  # one training step: running mean 0.3, var 1.3666...
    bn.eval()
    y = bn(tensor(BN_X, requires_grad=False)).numpy()
    expected = 2.0 * (BN_X - 0.3) / math.sqrt(0.9 + 0.1 * 14 / 3 + 1e-5) + 0.5
    np.testing.assert_allclose(y, expected, rtol=1e-10)
    np.testing.assert_allclose(bn.running_mean.numpy(), [0.3], rtol=1e-12)  # unchanged by eval


def test_batchnorm_buffers_are_in_the_state_dict_and_follow_the_model(device):
    bn = nn.BatchNorm2d(3)
    assert set(bn.state_dict()) == {"weight", "bias", "running_mean", "running_var"}
    other = "standin" if device != "standin" else "cpu"
    bn.to(other)
    assert bn.running_mean.device == other and bn.running_var.device == other
    np.testing.assert_array_equal(bn.running_var.numpy(), [1, 1, 1])


# --- state dicts ---------------------------------------------------------------------------------
def test_state_dict_round_trip(device):
    td.manual_seed(0)
    a = Net()
    a(td.Tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)))
    td.manual_seed(1)
    b = Net()
    assert b.load_state_dict(a.state_dict()) == ([], [])
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(ta.numpy(), tb.numpy(), err_msg=name)
    a.head.weight.data *= 0  # the copies do not share memory
    assert float(abs(b.head.weight.data).sum()) > 0
    a.eval(), b.eval()
    x = td.Tensor(np.ones((1, 3, 4, 4), dtype=np.float32))
    np.testing.assert_array_equal(a.features(x).numpy(), b.features(x).numpy())


def test_state_dict_loads_host_arrays_onto_the_models_device_and_dtype(device):
    layer = nn.Linear(2, 1)
    layer.load_state_dict({"weight": np.array([[1.0, 2.0]]), "bias": np.array([3.0])})
    assert layer.weight.device == device and layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.numpy(), [[1, 2]])


def test_load_state_dict_names_missing_unexpected_and_misshaped_keys():
    net = Net()
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    before = net.head.weight.numpy().copy()

    missing = dict(state)
    del missing["features.1.running_var"]
    with pytest.raises(RuntimeError, match=r"missing key\(s\): features.1.running_var"):
        net.load_state_dict(missing)

    unexpected = dict(state, **{"head.weight_typo": state["head.weight"]})
    with pytest.raises(RuntimeError, match=r"unexpected key\(s\): head.weight_typo"):
        net.load_state_dict(unexpected)

    misshaped = dict(state, **{"head.weight": np.zeros((3, 4)), "head.bias": state["head.bias"] + 1})
    with pytest.raises(RuntimeError, match=r"head.weight: shape \(3, 4\) in the state dict, "
                                           r"\(2, 4\) in the model"):
        net.load_state_dict(misshaped)
    np.testing.assert_array_equal(net.head.weight.numpy(), before)  # nothing was loaded
    assert float(net.head.bias.data[0]) == state["head.bias"][0]

    assert net.load_state_dict(dict(missing, extra=np.zeros(1)), strict=False) == (
        ["features.1.running_var"], ["extra"])


# --- devices and dtypes --------------------------------------------------------------------------
def test_to_moves_in_place_and_keeps_the_parameter_objects():
    net = Net()
    params = list(net.parameters())
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)  # built before the move
    assert net.to("standin") is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.device == "standin" for p in net.parameters())
    assert all(b.device == "standin" for b in net.buffers())
    with backend.device("standin"):
        x = td.Tensor(np.ones((2, 3, 4, 4), dtype=np.float32))
        net(x).sum().backward()
        before = net.head.weight.numpy()
        opt.step()  # the optimiser still updates the (moved) parameters
        assert not np.array_equal(net.head.weight.numpy(), before)
    opt.to("cpu")
    net.to("cpu")
    assert net.head.weight.grad.device == "cpu"
    opt.step()
    with pytest.raises(ValueError, match="unknown device"):
        net.to("tpu")


def test_double_and_float():
    net = Net().double()
    assert all(t.dtype == np.float64 for t in net.state_dict().values())
    assert all(t.dtype == np.float32 for t in net.float().state_dict().values())


# --- initialisation --------------------------------------------------------------------------------
def test_initialisations_have_their_documented_distributions():
    td.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)  # Kaiming normal, fan_out = 128 * 9
    w = conv.weight.numpy()
    assert abs(w.std() - math.sqrt(2 / (128 * 9))) < 0.02 * math.sqrt(2 / (128 * 9))
    assert abs(w.mean()) < 1e-3 and not conv.bias.numpy().any()

    fc = nn.Linear(400, 300, init="caffe_xavier")  # U(-sqrt(3/fan_in), sqrt(3/fan_in))
    w, bound = fc.weight.numpy(), math.sqrt(3 / 400)
    assert -bound <= w.min() < -0.99 * bound and 0.99 * bound < w.max() <= bound
    assert abs(w.var() - 1 / 400) < 0.02 / 400 and not fc.bias.numpy().any()

    w = nn.Linear(400, 200, init="xavier").weight.numpy()
    assert abs(w).max() <= math.sqrt(6 / 600) and abs(w).max() > 0.99 * math.sqrt(6 / 600)

    default = nn.Linear(400, 10)  # PyTorch's default: weight and bias in +-1/sqrt(fan_in)
    assert abs(default.weight.numpy()).max() <= 1 / 20 and abs(default.bias.numpy()).max() <= 1 / 20
    assert default.bias.numpy().any()

    assert nn.init.fans((8, 3, 5, 5)) == (75, 200)
    with pytest.raises(ValueError, match="unknown scheme"):
        nn.Linear(2, 2, init="glorot")


def test_manual_seed_makes_initialisation_reproducible_on_each_device(device):
    td.manual_seed(123)
    a = nn.Conv2d(3, 4, 3).weight.numpy()
    td.manual_seed(123)
    b = nn.Conv2d(3, 4, 3).weight.numpy()
    np.testing.assert_array_equal(a, b)
