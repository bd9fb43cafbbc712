"""The settings of one CIFAR run (:class:`Config`), checked when made."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, fields
from pathlib import Path

from ...data import cifar_n, transforms
from ..runner import Settings

#: A run's record names its experiment; its folder holds these two files.
EXPERIMENT = "cifar"
CHECKPOINT = "checkpoint.npz"
RESULTS = "results.json"
DATASETS = ("cifar10", "cifar100", "synthetic")
#: CIFAR-10N's human label sets (tinydm.data.cifar_n) replace the given labels: "cifar10n:worst".
HUMAN_NOISES = tuple(f"cifar10n:{v}" for v in cifar_n.VARIANTS)
NOISES = ("none", "symmetric", "asymmetric", "pair", *HUMAN_NOISES)
SAMPLERS = ("shuffle", "balanced")
SGD_STYLES = ("caffe", "pytorch")
#: How ``subset_per_class`` picks a class's images: at random, or the first ones in the files'
#: order (protocol M of docs/results.md; then ``val_per_class`` takes the next ones).
SUBSET_ORDERS = ("random", "first")
#: Fractions of the iterations where the lr is divided by ``lr_gamma`` when ``milestones`` is
#: not given: the paper's 15k and 22k of 30k.
DEFAULT_MILESTONES = (0.5, 22 / 30)
#: Config fields a resumed run may change: they do not change what is computed.
RESUMABLE = ("iterations", "device", "data_dir", "download", "out_dir")
#: The options of examples/cifar_resnet.py whose names are not their Config field's.
OPTIONS = {"synthetic_sizes": "--synthetic-size", "out_dir": "--out"}


@dataclass(frozen=True)
class Config(Settings):
    """Everything that determines a run (see the module docstring for the protocol).

    ``loss`` is any name of :func:`tinydm.losses.get` with its ``loss_params`` (for DM these
    include the remedies for emphasis collapse, docs/emphasis-collapse.md: ``warmup``, a
    schedule of tinydm.train.schedules, ``ess_floor``, ``per_class``; ``sampler="balanced"``
    is the fourth); checked when made;
    ``milestones`` are iterations (``None``: :data:`DEFAULT_MILESTONES` of ``iterations``);
    ``eval_train_subset`` is a number of training examples (``None``: all of them);
    ``std`` divides the images per channel after the mean (``None``: no division, as released).
    """

    KIND = "cifar.Config"

    dataset: str = "cifar10"
    data_dir: str | None = None
    download: bool = False
    synthetic_sizes: tuple = (512, 256)  # (train, test) images when dataset == "synthetic"
    synthetic_image_size: int = 32
    noise: str = "symmetric"
    noise_rate: float = 0.4
    noise_exact: bool = False
    subset_per_class: int | None = None
    subset_order: str = "random"
    val_fraction: float = 0.0
    val_per_class: int | None = None
    depth: int = 20
    shortcut: str = "A"
    loss: str = "cce"
    loss_params: dict = field(default_factory=dict)
    iterations: int = 30_000
    batch_size: int = 128
    lr: float = 0.1
    milestones: tuple | None = None
    lr_gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    sgd: str = "caffe"
    augment: str = "pad"
    std: tuple | None = None
    sampler: str = "shuffle"
    images_per_class: int = 8
    eval_every: int = 1000
    eval_train_subset: int | None = None
    eval_batch_size: int = 500
    log_every: int = 100
    seed: int = 123
    data_seed: int | None = None
    device: str = "cpu"
    out_dir: str | None = None

    def validate(self):
        for name, options in (("dataset", DATASETS), ("noise", NOISES), ("sampler", SAMPLERS),
                              ("sgd", SGD_STYLES), ("augment", transforms.AUGMENTATIONS),
                              ("subset_order", SUBSET_ORDERS)):
            self.check_choice(name, options)
        if self.noise == "asymmetric" and self.dataset != "cifar100":
            raise ValueError("cifar.Config: noise 'asymmetric' (superclass swaps) is CIFAR-100's")
        if self.noise == "pair" and self.dataset != "cifar10":
            raise ValueError("cifar.Config: noise 'pair' (class-dependent flips) is CIFAR-10's")
        if self.human_noise and self.dataset != "cifar10":
            raise ValueError(f"cifar.Config: noise {self.noise!r} (CIFAR-10N's human labels) "
                             f"is CIFAR-10's, not {self.dataset}'s")
        self.check_number("noise_rate", 0.0, 1.0)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"cifar.Config: val_fraction must be in [0, 1), got "
                             f"{self.val_fraction}")
        for name in ("iterations", "batch_size", "eval_every", "log_every", "eval_batch_size",
                     "images_per_class", "synthetic_image_size"):
            self.check_int(name)
        self.check_int("seed", minimum=0)
        self.check_int("data_seed", minimum=0, allow_none=True)
        self.check_int("subset_per_class", allow_none=True)
        self.check_int("eval_train_subset", allow_none=True)
        self.check_int("val_per_class", allow_none=True)
        if self.val_per_class is not None and (self.subset_per_class is None
                                               or self.val_fraction > 0):
            raise ValueError("cifar.Config: val_per_class holds out images beside a "
                             "subset_per_class subset, and excludes val_fraction")
        for name in ("lr", "momentum", "weight_decay"):
            self.check_number(name, 0.0)
        self.check_number("lr_gamma", 0.0, low_open=True)
        if self.milestones is not None and any(m < 0 for m in self.milestones):
            raise ValueError(f"cifar.Config: milestones must be iterations >= 0, got "
                             f"{self.milestones}")
        self.check_loss(self.loss, self.loss_params)
        self.check_device("device")

    def resolved(self):
        """This config with the defaults that depend on others filled in: ``milestones`` from
        ``iterations``, ``data_seed`` from ``seed``, ``out_dir`` from :attr:`name`. The
        resolved config is what results and checkpoints record."""
        milestones = self.milestones
        if milestones is None:
            milestones = tuple(int(round(f * self.iterations)) for f in DEFAULT_MILESTONES)
        return self.replace(milestones=tuple(int(m) for m in milestones),
                            data_seed=self.seed if self.data_seed is None else self.data_seed,
                            out_dir=self.out_dir or str(Path("runs") / "cifar" / self.name),
                            loss_params={k: v if isinstance(v, bool) else float(v)  # per_class
                                         for k, v in self.loss_params.items()},
                            synthetic_sizes=tuple(self.synthetic_sizes),
                            std=None if self.std is None else tuple(self.std))

    @property
    def human_noise(self):
        """Whether the labels are CIFAR-10N's human ones (``noise_rate`` then plays no part)."""
        return self.noise in HUMAN_NOISES

    @property
    def name(self):
        """A folder name: data set, depth, noise, method and seed."""
        params = "".join(f"_{k}{v:g}" for k, v in self.loss_params.items())
        if self.human_noise:
            noise_part = self.noise.replace(":", "-")
        elif self.noise == "none" or self.noise_rate == 0:
            noise_part = "clean"
        else:
            noise_part = f"{self.noise}{self.noise_rate:g}"
        return f"{self.dataset}_resnet{self.depth}_{noise_part}_{self.loss}{params}_seed{self.seed}"

    def command(self, program="python examples/cifar_resnet.py"):
        """The command line that runs these settings: ``program`` with an option for every
        setting that is not its default, and the seed (a loss parameter ``per_class`` is
        ``--per-class``, ``lam`` is ``--lam``); ``data_seed`` equal to ``seed`` is left out, as
        it is the default."""
        default, words = Config(), shlex.split(program)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "loss_params":
                for k, v in value.items():
                    words += [f"--{k.replace('_', '-')}"] + ([] if v is True else [f"{v:g}"])
                continue
            if f.name != "seed" and (value == getattr(default, f.name) or
                                     (f.name == "data_seed" and value == self.seed)):
                continue
            option = OPTIONS.get(f.name, f"--{f.name.replace('_', '-')}")
            if value is True:
                words.append(option)
            elif isinstance(value, (tuple, list)):
                words += [option, *(f"{v:g}" if isinstance(v, float) else str(v) for v in value)]
            else:
                words += [option, f"{value:g}" if isinstance(value, float) else str(value)]
        # "~/..." stays expandable by the shell
        return " ".join("~/" + shlex.quote(w[2:]) if w.startswith("~/") else shlex.quote(w)
                        for w in words)
