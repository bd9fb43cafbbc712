"""The settings of one IMDB run (:class:`RunSettings`) and of the runs of a table."""

from __future__ import annotations

from dataclasses import dataclass, field

from ... import losses
from ...train import schedules
from ..runner import Settings
from .protocol import COLUMNS, LOSSES, ROW_KEYS, SEEDS, column, row

SAMPLERS = ("shuffle", "balanced")
#: DM's remedies for emphasis collapse and their "off" values: the loss's own (tinydm.losses.DM)
#: and the beta warm-up, a schedule of the training loop (tinydm.train.schedules).
REMEDIES = {**schedules.SCHEDULE_PARAMS,
            **{k: losses.parameters("dm")[k] for k in ("ess_floor", "per_class")}}


@dataclass(frozen=True)
class RunSettings(Settings):
    """Everything that determines a run. Two runs with equal settings give the same result
    (on one device), which is what lets a finished run be skipped. Checked when made.

    ``loss`` is the table's method (a tinydm.losses name) and ``loss_params`` its keyword
    arguments (``{"q": 0.7}`` for GCE, ``{"lam": ..., "beta": ...}`` for DM, plus any remedy of
    :data:`REMEDIES` that is on); ``sampler`` is ``"shuffle"`` (epochs) or ``"balanced"`` (half
    of each batch from each given label); ``features`` is the fingerprint of the feature arrays
    (:attr:`Features.fingerprint`).
    """

    KIND = "imdb"

    row: str
    loss: str
    seed: int
    loss_params: dict = field(default_factory=dict)
    iterations: int = 10_000
    batch_size: int = 250
    sampler: str = "shuffle"
    base_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.002
    lr_gamma: float = 1e-5
    lr_power: float = 0.75
    hidden: int = 8
    eval_every: int = 250
    log_every: int = 100
    device: str = "cpu"
    features: str = ""

    def validate(self):
        row(self.row)  # a clear error for an unknown row
        if self.loss not in LOSSES:
            raise ValueError(f"imdb: unknown method {self.loss!r}; choose from {', '.join(LOSSES)}")
        self.check_int("seed", minimum=0)
        for name in ("iterations", "batch_size", "eval_every", "log_every", "hidden"):
            self.check_int(name)
        self.check_choice("sampler", SAMPLERS)
        for name in ("base_lr", "momentum", "weight_decay", "lr_gamma", "lr_power"):
            self.check_number(name, 0.0)
        warmup = self.loss_params.get("warmup", 0)
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"imdb: warmup must be a number of iterations >= 0, got {warmup!r}")
        self.check_loss(self.loss, self.loss_params)  # e.g. ess_floor > 1
        self.check_device("device")

    @property
    def variant(self):
        """The remedies in use as a tag, ``""`` for none: ``+warmup1000``, ``+ess0.99``,
        ``+perclass``, ``+balanced``, in this order."""
        p = self.loss_params
        tags = [f"warmup{p['warmup']}" if p.get("warmup") else "",
                f"ess{p['ess_floor']:g}" if p.get("ess_floor") else "",
                "perclass" if p.get("per_class") else "",
                self.sampler if self.sampler != "shuffle" else ""]
        return "".join("+" + t for t in tags if t)

    @property
    def name(self):
        return f"{self.row}/{self.loss}{self.variant}_seed{self.seed}"


def make_settings(row_key, method, seed, lam=None, beta=None, warmup=0, ess_floor=0.0,
                  per_class=False, **protocol):
    """The settings of one cell and seed: the paper's loss parameters (the registry's defaults,
    GCE's q = 0.7; the zoo's own defaults; DM's lam and beta of the row unless ``lam``/``beta``
    are given), DM's remedies ``warmup``, ``ess_floor``, ``per_class`` (:data:`REMEDIES`; only DM has them,
    other methods ignore them) and the protocol's defaults, which ``protocol`` (any other
    :class:`RunSettings` field, ``sampler`` included) overrides."""
    r = row(row_key)
    if method == "dm":
        params = {"lam": float(r.lam if lam is None else lam),
                  "beta": float(r.beta if beta is None else beta)}
        remedies = {"warmup": warmup, "ess_floor": float(ess_floor), "per_class": bool(per_class)}
        params.update({k: v for k, v in remedies.items() if v != REMEDIES[k]})
    elif method in LOSSES:
        params = losses.parameters(method)
    else:
        params = {}
    return RunSettings(row_key, method, int(seed), params, **protocol)


def table_settings(rows=ROW_KEYS, methods=COLUMNS, seeds=SEEDS, lam=None, beta=None, **protocol):
    """The settings of every run of a table, row by row, then seed, then column: ``methods``
    are columns of :data:`~.protocol.COLUMNS` (a method, or ``"dm+perclass"``: a method with
    its remedies on top of those of ``protocol``). Runs that two columns share are listed
    once."""
    found = {}
    for r in rows:
        for s in seeds:
            for key in methods:
                method, remedies = column(key)
                settings = make_settings(r, method, s, lam=lam, beta=beta,
                                         **{**protocol, **remedies})
                found.setdefault(settings.name, settings)
    return list(found.values())


#: The fields a record's path names (``<row>/<loss><variant>_seed<seed>.json``; the variant
#: names the remedies and the sampler): the runs of one output folder may differ in these only.
NAMED_IN_PATH = ("row", "loss", "seed", "loss_params", "sampler")


def folder_settings(settings, lam=None, beta=None):
    """What every run in one output folder shares (runner.claim_output): the fields of
    ``settings`` (a RunSettings of the folder) that its path does not name, and DM's ``lam``
    and ``beta`` as given to the table (None: the paper's, per row). The features' fingerprint
    is left out while it is not known yet (empty)."""
    shared = {k: v for k, v in settings.as_dict().items() if k not in NAMED_IN_PATH}
    if not shared["features"]:
        del shared["features"]
    return {"experiment": "imdb", **shared, "dm_lam": lam, "dm_beta": beta}
