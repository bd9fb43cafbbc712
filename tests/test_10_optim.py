"""Optimisers and schedules: each update rule against numbers worked out by hand from the formula
in tinydm/optim.py, the schedules' values, the optimiser state through a checkpoint file on
either device, and a tiny MLP that learns XOR."""

import math
import os

import numpy as np
import pytest

import tinydm as td
from tinydm import backend, checkpoint, losses, nn, optim


def _param(value):
    return nn.Parameter(np.array([value], dtype=np.float64))


def _run(opt, p, grads, lrs=None):
    """Take one step per gradient (setting lr first, if given); the weight after each step."""
    weights = []
    for k, g in enumerate(grads):
        if lrs is not None:
            opt.lr = lrs[k]
        p.grad = td.Tensor(np.array([g], dtype=np.float64))
        opt.step()
        weights.append(float(p.data[0]))
    return weights


# Two steps from w0 = 1.0 with gradients 0.5 then -1.0, lr 0.1, weight decay 0.1.
def test_sgd_plain_is_gradient_descent_with_weight_decay(device):
    p = _param(1.0)
    # w1 = 1 - 0.1 * (0.5 + 0.1*1)            = 0.94
    # w2 = 0.94 - 0.1 * (-1 + 0.1*0.94)       = 0.94 + 0.0906 = 1.0306
    assert _run(optim.SGD([p], lr=0.1, weight_decay=0.1), p, [0.5, -1.0]) == pytest.approx(
        [0.94, 1.0306], abs=1e-12)


def test_sgd_momentum_pytorch_convention(device):
    p = _param(1.0)
    # d1 = 0.5 + 0.1*1 = 0.6;          v1 = 0.6;                    w1 = 1 - 0.1*0.6 = 0.94
    # d2 = -1 + 0.1*0.94 = -0.906;     v2 = 0.9*0.6 - 0.906 = -0.366;  w2 = 0.94 + 0.0366 = 0.9766
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1)
    assert _run(opt, p, [0.5, -1.0]) == pytest.approx([0.94, 0.9766], abs=1e-12)
    assert float(opt.state[0]["momentum_buffer"][0]) == pytest.approx(-0.366, abs=1e-12)


def test_sgd_nesterov(device):
    p = _param(1.0)
    # d1 = 0.6;  v1 = 0.6;  w1 = 1 - 0.1*(0.6 + 0.9*0.6) = 0.886
    # d2 = -1 + 0.0886 = -0.9114;  v2 = 0.54 - 0.9114 = -0.3714
    # w2 = 0.886 - 0.1*(-0.9114 + 0.9*(-0.3714)) = 0.886 + 0.124566 = 1.010566
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True)
    assert _run(opt, p, [0.5, -1.0]) == pytest.approx([0.886, 1.010566], abs=1e-12)


def test_sgd_caffe_convention_differs_from_pytorch_only_after_lr_changes(device):
    # lr 0.1 for the first step, 0.01 for the second.
    # Caffe:   v1 = 0.1*0.6 = 0.06;  w1 = 0.94
    #          d2 = -0.906;  v2 = 0.9*0.06 + 0.01*(-0.906) = 0.04494;  w2 = 0.94 - 0.04494 = 0.89506
    # PyTorch: v1 = 0.6; w1 = 0.94;  v2 = -0.366;  w2 = 0.94 - 0.01*(-0.366) = 0.94366
    p = _param(1.0)
    caffe = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1, caffe_style=True)
    assert _run(caffe, p, [0.5, -1.0], lrs=[0.1, 0.01]) == pytest.approx([0.94, 0.89506], abs=1e-12)
    p = _param(1.0)
    torch_like = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1)
    assert _run(torch_like, p, [0.5, -1.0], lrs=[0.1, 0.01]) == pytest.approx([0.94, 0.94366],
                                                                               abs=1e-12)


def test_sgd_caffe_and_pytorch_agree_at_constant_lr():
    a, b = _param(1.0), _param(1.0)
    grads = [0.5, -1.0, 0.25, 2.0]
    wa = _run(optim.SGD([a], lr=0.05, momentum=0.9, weight_decay=0.01), a, grads)
    wb = _run(optim.SGD([b], lr=0.05, momentum=0.9, weight_decay=0.01, caffe_style=True), b, grads)
    assert wa == pytest.approx(wb, abs=1e-12)


# Adam from w0 = 1.0, gradients 0.5 then -1.0, lr 0.1, betas (0.9, 0.999), eps (delta) 0.1.
# m1 = 0.05, s1 = 0.001*0.25 = 0.00025;  m2 = 0.045 - 0.1 = -0.055, s2 = 0.00024975 + 0.001 = 0.00124975
def test_adam_pytorch_convention(device):
    p = _param(1.0)
    # w1 = 1 - 0.1 * (0.05/0.1) / (sqrt(0.00025/0.001) + 0.1) = 1 - 0.1*0.5/0.6 = 0.91666667
    # w2 = w1 - 0.1 * (-0.055/0.19) / (sqrt(0.00124975/0.001999) + 0.1)
    #    = 0.91666667 - 0.1 * (-0.28947368) / (0.79068805 + 0.1) = 0.94916667
    opt = optim.Adam([p], lr=0.1, eps=0.1)
    assert _run(opt, p, [0.5, -1.0]) == pytest.approx([0.9166666667, 0.9491666743], abs=1e-9)
    assert opt.state[0]["step"] == 2
    assert float(opt.state[0]["exp_avg"][0]) == pytest.approx(-0.055, abs=1e-12)
    assert float(opt.state[0]["exp_avg_sq"][0]) == pytest.approx(0.00124975, abs=1e-12)


def test_adam_caffe_convention(device):
    p = _param(1.0)
    # w1 = 1 - 0.1 * sqrt(0.001)/0.1 * 0.05 / (sqrt(0.00025) + 0.1)
    #    = 1 - 0.031622777 * 0.05 / 0.115811388 = 0.98634729
    # w2 = w1 - 0.1 * sqrt(0.001999)/0.19 * (-0.055) / (sqrt(0.00124975) + 0.1)
    #    = 0.98634729 + 0.023531848 * 0.055 / 0.135352086 = 0.99590935
    opt = optim.Adam([p], lr=0.1, eps=0.1, caffe_style=True)
    assert _run(opt, p, [0.5, -1.0]) == pytest.approx([0.9863472941, 0.9959093535], abs=1e-9)


def test_adam_weight_decay_is_added_to_the_gradient():
    a, b = _param(1.0), _param(1.0)
    wa = _run(optim.Adam([a], lr=0.1, weight_decay=0.5), a, [0.5])
    wb = _run(optim.Adam([b], lr=0.1), b, [0.5 + 0.5 * 1.0])
    assert wa == pytest.approx(wb, abs=1e-12)


def test_step_is_in_place_builds_no_graph_and_skips_missing_grads(device):
    p, q = _param(1.0), _param(2.0)
    data_before = p.data
    opt = optim.SGD([p, q], lr=0.1, momentum=0.9)
    p.grad = td.Tensor(np.array([1.0]))
    opt.step()
    assert float(data_before[0]) == float(p.data[0]) == 0.9  # updated in place
    assert p.is_leaf and p.creator is None
    assert float(q.data[0]) == 2.0 and opt.state[1] == {}
    assert backend.device_of(opt.state[0]["momentum_buffer"]) == device
    opt.zero_grad()
    assert p.grad is None


def test_optimiser_argument_errors():
    p = _param(1.0)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="requires_grad"):
        optim.Adam([td.Tensor([1.0])])
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(0.9, 1.0))


# --- schedules ---------------------------------------------------------------------------------
def test_multistep_divides_by_ten_at_the_milestones():
    opt = optim.SGD([_param(0.0)], lr=0.1)
    sched = optim.MultiStepLR(opt, milestones=[15000, 22000], gamma=0.1)
    assert [sched(it) for it in (0, 14999, 15000, 21999, 22000, 29999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rel=1e-12)


def test_inv_is_caffes_formula():
    opt = optim.SGD([_param(0.0)], lr=0.01)
    sched = optim.InvLR(opt, gamma=1e-5, power=0.75)
    # 0.01 * (1 + 1e-5 * 10000) ** -0.75 = 0.01 * 1.1 ** -0.75 = 0.0093100...
    assert sched(0) == 0.01
    assert sched(10000) == pytest.approx(0.01 * 1.1 ** -0.75, rel=1e-12)
    assert sched(10000) == pytest.approx(0.0093102, rel=1e-5)


def test_step_halving_and_fixed():
    opt = optim.SGD([_param(0.0)], lr=0.01)
    halving = optim.StepLR(opt, 10000, gamma=0.5)
    assert [halving(it) for it in (0, 9999, 10000, 20000, 49999)] == pytest.approx(
        [0.01, 0.01, 0.005, 0.0025, 0.000625])
    fixed = optim.get_scheduler("fixed", opt)
    assert fixed(0) == fixed(10 ** 6) == 0.01


def test_scheduler_step_sets_the_optimiser_lr():
    opt = optim.SGD([_param(0.0)], lr=1.0)
    sched = optim.get_scheduler("multistep", opt, milestones=[2], gamma=0.5)
    seen = []
    for _ in range(4):
        seen.append(opt.lr)  # the lr the update of this iteration uses
        sched.step()
    assert seen == [1.0, 1.0, 0.5, 0.5]
    resumed = optim.MultiStepLR(optim.SGD([_param(0.0)], lr=1.0), [2], 0.5, iteration=3)
    assert resumed.optimizer.lr == 0.5
    with pytest.raises(ValueError, match="unknown schedule"):
        optim.get_scheduler("cosine", opt)


# --- state through a checkpoint file -------------------------------------------------------------
def _model_and_optimiser(kind, seed):
    td.manual_seed(seed)
    model = nn.MLP([3, 5, 2])
    opt = (optim.Adam(model.parameters(), lr=0.01, eps=1e-3) if kind == "adam" else
           optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3))
    return model, opt


def _train_steps(model, opt, steps):
    for k in range(steps):
        x = td.Tensor(np.linspace(-1, 1, 12).reshape(4, 3).astype(np.float32) * (k + 1))
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        opt.step()


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("saved_on,loaded_on", [("cpu", "standin"), ("standin", "cpu")])
def test_optimiser_state_round_trip_across_devices(tmp_path, kind, saved_on, loaded_on):
    path = str(tmp_path / "ckpt.npz")
    with backend.device(saved_on):
        model, opt = _model_and_optimiser(kind, seed=1)
        sched = optim.StepLR(opt, step_size=2, gamma=0.5)
        _train_steps(model, opt, 3)
        for _ in range(3):
            sched.step()
        checkpoint.save(path, model, opt, sched, extra={"iteration": 3, "note": "resume me"})
        _train_steps(model, opt, 2)  # the run that continues without interruption
        expected = {k: t.numpy() for k, t in model.state_dict().items()}
    with backend.device(loaded_on):
        model2, opt2 = _model_and_optimiser(kind, seed=2)  # other weights, fresh state
        sched2 = optim.StepLR(opt2, step_size=2, gamma=0.5)
        extra = checkpoint.load(path, model2, opt2, sched2)
        assert extra == {"iteration": 3, "note": "resume me"}
        assert sched2.iteration == 3 and opt2.lr == pytest.approx(opt.lr)
        if kind == "adam":
            assert [s["step"] for s in opt2.state] == [3] * 4
        assert all(backend.device_of(v) == loaded_on
                   for s in opt2.state for v in s.values() if backend.is_array(v))
        _train_steps(model2, opt2, 2)  # the resumed run
        for name, t in model2.state_dict().items():
            np.testing.assert_allclose(t.numpy(), expected[name], rtol=1e-6, atol=1e-7)


def test_checkpoint_is_written_atomically(tmp_path):
    path = str(tmp_path / "model.npz")
    model, opt = _model_and_optimiser("sgd", seed=0)
    checkpoint.save(path, model, opt)
    before = open(path, "rb").read()
    with pytest.raises(TypeError, match="JSON"):
        checkpoint.save(path, model, opt, extra={"bad": object()})
    assert open(path, "rb").read() == before  # the old checkpoint is untouched
    assert os.listdir(tmp_path) == ["model.npz"]  # and no temporary file is left behind
    checkpoint.save(path, model, extra={"iteration": 7})  # overwriting works
    assert os.listdir(tmp_path) == ["model.npz"]
    with pytest.raises(ValueError, match="no optimizer"):
        checkpoint.load(path, model, opt)
    assert checkpoint.load(path, model) == {"iteration": 7}


def test_optimiser_load_rejects_other_types_and_sizes():
    _, sgd = _model_and_optimiser("sgd", seed=0)
    _, adam = _model_and_optimiser("adam", seed=0)
    with pytest.raises(ValueError, match="SGD"):
        adam.load_state_dict(sgd.state_dict())
    small = optim.SGD([_param(0.0)], lr=0.1)
    with pytest.raises(ValueError, match="1 parameters"):
        sgd.load_state_dict(small.state_dict())


# --- learning ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_mlp_learns_xor(device, kind):
    td.manual_seed(0)
    x = td.Tensor(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32))
    y = td.Tensor(np.array([0, 1, 1, 0]))
    model = nn.MLP([2, 8, 2])
    opt = (optim.Adam(model.parameters(), lr=0.05) if kind == "adam" else
           optim.SGD(model.parameters(), lr=0.5, momentum=0.9))
    for _ in range(300):
        opt.zero_grad()
        loss = losses.cce(model(x), y)
        loss.backward()
        opt.step()
    assert float(loss.data) < 0.05
    assert (backend.to_numpy(model(x).data).argmax(axis=1) == [0, 1, 1, 0]).all()
    assert math.isfinite(float(loss.data))
