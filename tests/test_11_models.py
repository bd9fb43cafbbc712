"""The paper's models: CIFAR ResNets with the published parameter counts, an end-to-end gradient
check of ResNet-20, the MLP, a tiny CNN that overfits 64 images, and a whole model saved on one
device and loaded on the other."""

import numpy as np
import pytest

import tinydm as td
from conftest import tensor
from tinydm import backend, checkpoint, losses, nn, optim

# Exact counts for 10 classes; He et al. (2016), Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M.
COUNTS = {20: (269722, 272474), 32: (464154, 466906), 44: (658586, 661338),
          56: (853018, 855770), 110: (1727962, 1730714)}
PUBLISHED = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7}


@pytest.mark.parametrize("depth", sorted(COUNTS))
def test_resnet_parameter_counts(depth):
    option_a = nn.resnet_cifar(depth).num_parameters()
    option_b = nn.resnet_cifar(depth, shortcut="B").num_parameters()
    assert (option_a, option_b) == COUNTS[depth]
    digits = 1 if depth == 110 else 2
    assert round(option_a / 1e6, digits) == PUBLISHED[depth]  # option A matches the paper


def test_resnet_layout_and_names():
    net = nn.resnet_cifar(20, num_classes=100)
    names = [n for n, _ in net.named_parameters()]
    assert names[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert names[-2:] == ["fc.weight", "fc.bias"] and net.fc.weight.shape == (100, 64)
    assert [len(net.layer1), len(net.layer2), len(net.layer3)] == [3, 3, 3]
    assert net.layer2[0].conv1.weight.shape == (32, 16, 3, 3) and net.layer2[0].conv1.stride == 2
    assert net.layer2[0].conv1.bias is None  # BN follows every conv
    assert "layer2.0.downsample.0.weight" not in names
    b = nn.resnet_cifar(20, shortcut="B")
    assert b.layer3[0].downsample[0].weight.shape == (64, 32, 1, 1)
    assert "layer3.0.downsample.1.running_var" in b.state_dict()
    assert nn.resnet_cifar(44, num_classes=100).num_parameters() == 658586 - 650 + 6500


def test_resnet_argument_errors():
    with pytest.raises(ValueError, match="6n"):
        nn.resnet_cifar(18)
    with pytest.raises(ValueError, match="shortcut"):
        nn.resnet_cifar(20, shortcut="C")
    with pytest.raises(ValueError, match="num_classes"):
        nn.resnet_cifar(20, num_classes=0)


def test_option_a_shortcut_is_a_subsampled_identity_with_zero_channels(device):
    block = nn.BasicBlock(16, 32, stride=2)
    x = td.Tensor(np.random.default_rng(0).standard_normal((2, 16, 8, 8)).astype(np.float32))
    s = block.shortcut(x).numpy()
    assert s.shape == (2, 32, 4, 4)
    np.testing.assert_array_equal(s[:, :16], x.numpy()[:, :, ::2, ::2])
    assert not s[:, 16:].any()
    assert block(x).shape == (2, 32, 4, 4)


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_resnet20_gradcheck_end_to_end(device, shortcut):
    """Directional check in float64 of the whole network, training-mode BN, w.r.t. the images and
    every parameter: 2 images of 8x8 (global pooling makes any size >= 4 work)."""
    td.manual_seed(0)
    net = nn.resnet_cifar(20, num_classes=10, shortcut=shortcut).double()
    x = tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)))
    assert net(x).shape == (2, 10)
    assert td.gradcheck(lambda x, *params: net(x), x, *net.parameters(), mode="directional")


def test_resnet_eval_mode_is_deterministic_and_batch_independent(device):
    net = nn.resnet_cifar(8)
    x = td.Tensor(np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32))
    net(x)  # one training forward moves the running statistics
    net.eval()
    whole = net(x).numpy()
    np.testing.assert_allclose(net(x[:1]).numpy(), whole[:1], rtol=1e-4, atol=1e-5)


def test_forward_only_evaluation_gives_the_numbers_of_the_graph_recording_one(device, monkeypatch):
    """The evaluation's fast path (no_grad: no graph, no saved arrays; batch norm fused with the
    ReLU that follows it) against the plain forward (a graph recorded, relu(batch_norm(x)) as two
    ops): the same logits bit for bit, hence the same accuracies, at several evaluation batch
    sizes."""
    from tinydm.train.loop import predict
    td.manual_seed(0)
    net = nn.resnet_cifar(8)
    rng = np.random.default_rng(0)
    x = td.Tensor(rng.standard_normal((48, 3, 8, 8)).astype(np.float32))
    labels = rng.integers(0, 10, 48)
    net(x)  # one training forward moves the running statistics
    fast = {b: predict(net, x, batch_size=b) for b in (16, 48)}

    def plain(self, x, relu=False):  # the unfused path, recording the graph
        y = F.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                         training=self.training, momentum=self.momentum, eps=self.eps)
        return F.relu(y) if relu else y
    F = td.functional
    monkeypatch.setattr(nn.BatchNorm2d, "forward", plain)
    net.eval()
    for b, logits in fast.items():
        parts = [net(x[s:s + b]) for s in range(0, 48, b)]
        assert all(p.requires_grad for p in parts)  # the graph was recorded
        slow = np.concatenate([p.numpy() for p in parts])
        np.testing.assert_array_equal(backend.to_numpy(logits), slow)
        assert (backend.to_numpy(logits).argmax(1) == labels).mean() == \
            (slow.argmax(1) == labels).mean()


# --- MLP -----------------------------------------------------------------------------------------
def test_mlp_layout():
    mlp = nn.MLP([100, 8, 2], init="caffe_xavier")  # the paper's IMDB network
    assert [n for n, _ in mlp.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert mlp.num_parameters() == 100 * 8 + 8 + 8 * 2 + 2
    assert not mlp[0].bias.numpy().any()
    assert abs(mlp[0].weight.numpy()).max() <= np.sqrt(3 / 100)
    with_dropout = nn.MLP([4, 5, 5, 3], dropout=0.2)
    assert [type(m).__name__ for m in with_dropout] == [
        "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    with pytest.raises(ValueError, match="activation"):
        nn.MLP([2, 2], activation="swish")
    with pytest.raises(ValueError, match="sizes"):
        nn.MLP([3])


# --- learning ------------------------------------------------------------------------------------
def test_tiny_cnn_overfits_64_images(device):
    td.manual_seed(0)
    rng = np.random.default_rng(0)
    x = td.Tensor(rng.standard_normal((64, 3, 8, 8)).astype(np.float32))
    y = td.Tensor(rng.integers(0, 10, 64))  # random labels: only memorising fits them
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16),
                        nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
    opt = optim.Adam(net.parameters(), lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        loss = losses.cce(net(x), y)
        loss.backward()
        opt.step()
    assert float(loss.data) < 0.05
    net.eval()
    accuracy = (backend.to_numpy(net(x).data).argmax(axis=1) == y.numpy()).mean()
    assert accuracy == 1.0


@pytest.mark.parametrize("saved_on,loaded_on", [("cpu", "standin"), ("standin", "cpu")])
def test_resnet_checkpoint_across_devices(tmp_path, saved_on, loaded_on):
    path = str(tmp_path / "resnet.npz")
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with backend.device(saved_on):
        td.manual_seed(0)
        net = nn.resnet_cifar(8, shortcut="B")
        opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9, caffe_style=True)
        losses.cce(net(td.Tensor(x)), td.Tensor(np.array([1, 2]))).backward()
        opt.step()  # moves weights, momentum buffers and BN running statistics
        checkpoint.save(path, net, opt, extra={"iteration": 1})
        expected = net.eval()(td.Tensor(x)).numpy()
    with backend.device(loaded_on):
        td.manual_seed(1)
        net2 = nn.resnet_cifar(8, shortcut="B")
        opt2 = optim.SGD(net2.parameters(), lr=0.5)
        assert checkpoint.load(path, net2, opt2) == {"iteration": 1}
        assert opt2.caffe_style and opt2.momentum == 0.9
        assert net2.layer1[0].bn1.running_mean.device == loaded_on
        np.testing.assert_allclose(net2.eval()(td.Tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
