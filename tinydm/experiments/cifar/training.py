"""One CIFAR run: the model, optimiser, batches and evaluation, checkpoints after every
evaluation, and the record; :func:`run` is the entry point (a sweep calls it with a settings
dict)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ... import backend, checkpoint, losses, nn, optim
from ...data import sampling, transforms
from ...tensor import Tensor, no_grad
from ...train import Diverged, History, accuracy, class_histogram, fit, loss_schedule, predict
from ..runner import accuracy_summary, build_on_host, make_record, output_folder, write_record
from .data import prepare_data
from .settings import CHECKPOINT, EXPERIMENT, RESULTS, RESUMABLE, Config



def build_model(config, num_classes):
    """The CIFAR ResNet, initialised on the host from ``seed`` and moved to the device."""
    return build_on_host(config.seed, config.device, lambda: nn.resnet_cifar(
        config.depth, num_classes, shortcut=config.shortcut))


def build_optimizer(config, model):
    """SGD with momentum and weight decay on every parameter, and the multistep schedule."""
    opt = optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                    weight_decay=config.weight_decay, caffe_style=config.sgd == "caffe")
    return opt, optim.MultiStepLR(opt, config.milestones, gamma=config.lr_gamma)


def make_sampler(config, labels, device):
    """Batch indices per iteration (tinydm.data.sampling), from the given (noisy) labels."""
    if config.sampler == "balanced":
        return sampling.BalancedBatches(labels, config.batch_size, config.seed,
                                        config.images_per_class, device=device)
    return sampling.ShuffledBatches(len(labels), config.batch_size, config.seed, device=device)


class Evaluator:
    """The evaluation of the module docstring, on the device: ``evaluator(model, it) -> dict``."""

    def __init__(self, data, pipeline, config, prepared_train):
        dev = config.device
        self.pipeline, self.batch_size = pipeline, config.eval_batch_size
        self.num_classes = data.num_classes
        self.test = pipeline.prepare(backend.to_device(data.test_images, dev))
        self.test_labels = backend.to_device(data.test_labels, dev)
        self.val = (pipeline.prepare(backend.to_device(data.val_images, dev))
                    if len(data.val_labels) else None)
        self.val_labels = backend.to_device(data.val_labels, dev)
        sub = data.eval_index
        full = sub.size == data.labels.size
        self.train = prepared_train if full else prepared_train[backend.to_device(sub, dev)]
        self.given = backend.to_device(data.labels[sub], dev)
        self.clean = backend.to_device(data.clean_labels[sub], dev)
        self.corrupted = backend.to_device(data.corrupted[sub], dev)
        self.n_noisy = int(data.corrupted[sub].sum())
        self.n_clean = sub.size - self.n_noisy
        self.final_iteration = config.iterations

    def logits(self, model, images):
        """Logits of prepared images, in evaluation mode, ``batch_size`` images at a time."""
        xp = backend.get_array_module(images)
        parts = [predict(model, Tensor(self.pipeline.test(images[s:s + self.batch_size])),
                         batch_size=self.batch_size)
                 for s in range(0, images.shape[0], self.batch_size)]
        return xp.concatenate(parts, axis=0)

    def __call__(self, model, it):
        started = time.perf_counter()
        test_logits = self.logits(model, self.test)
        metrics = {"test_accuracy": accuracy(test_logits, self.test_labels),
                   "test_class_histogram": class_histogram(test_logits, self.num_classes)}
        if self.val is not None:
            metrics["val_accuracy"] = accuracy(self.logits(model, self.val), self.val_labels)
        train_logits = self.logits(model, self.train)
        predicted = train_logits.argmax(axis=1)
        with no_grad():  # p_i of the given labels, as the loss nodes compute it (stably)
            p = losses.details(losses.cce(Tensor(train_logits), Tensor(self.given)))["p_i"].data
        noisy, clean = self.corrupted, ~self.corrupted

        def share(values, mask, count):
            return float((values * mask).sum()) / count if count else None

        metrics.update({
            "train_accuracy_noisy_labels": accuracy(train_logits, self.given),
            "train_accuracy_clean_labels": accuracy(train_logits, self.clean),
            "mean_p_clean": share(p, clean, self.n_clean),
            "mean_p_noisy": share(p, noisy, self.n_noisy),
            "noisy_memorised": share(predicted == self.given, noisy, self.n_noisy),
            "noisy_corrected": share(predicted == self.clean, noisy, self.n_noisy),
        })
        if it == self.final_iteration:  # once: C^2 pairs per evaluation would swell a record
            metrics["noisy_memorised_pairs"] = memorised_pairs(
                self.clean, self.given, noisy & (predicted == self.given), self.num_classes)
        metrics["eval_seconds"] = time.perf_counter() - started
        return metrics


def memorised_pairs(clean, given, memorised, num_classes):
    """``[clean class, given label, corrupted examples, of them memorised]`` for each pair of
    classes that the noise swaps (given != clean): which swaps a network learns by heart."""
    xp = backend.get_array_module(clean)
    pair = clean * num_classes + given
    noisy = backend.to_numpy(xp.bincount(pair[clean != given], minlength=num_classes ** 2))
    learnt = backend.to_numpy(xp.bincount(pair[memorised], minlength=num_classes ** 2))
    return [[int(k // num_classes), int(k % num_classes), int(noisy[k]), int(learnt[k])]
            for k in np.flatnonzero(noisy)]


def _check_resumable(saved, config):
    differ = sorted(k for k in saved if k not in RESUMABLE and saved[k] != config.get(k))
    if differ:
        raise ValueError("cifar: --resume with different settings than the checkpoint's: "
                         + "; ".join(f"{k}: {saved[k]!r} -> {config.get(k)!r}" for k in differ))


def run(config, resume=False, overwrite=False, progress=True, figures=True, dataset=None,
        log=print, human_labels=None, named_out_dir=None):
    """Train one run of ``config`` and return its results (also written to ``out_dir``).

    ``resume``: continue from ``out_dir/checkpoint.npz`` if it exists (else start afresh),
    with the checkpoint's thread counts; without it, an existing checkpoint is an error unless
    ``overwrite``. ``out_dir`` is claimed before the data load (runner.output_folder: writable,
    locked until the run ends, and holding no run of other settings unless ``overwrite``).
    ``dataset``: a :class:`tinydm.data.cifar.CifarData` to use instead of
    loading ``config.dataset``; ``human_labels``: CIFAR-10N's label sets
    (:func:`tinydm.data.cifar_n.load`) to use instead of reading them from ``data_dir``. A run
    whose loss or weights become non-finite stops there: its
    record gets ``"status": "diverged"`` and ``summary["diverged_by"]`` (the iteration), the
    last checkpoint (before it) is kept. ``named_out_dir``: the ``out_dir`` that the records and
    checkpoints name instead of the real one (a sweep names its work folders relative to its own
    folder, so that what it commits holds no machine's paths).
    """
    if isinstance(config, dict):
        config = Config.from_dict(config)
    config = config.resolved()
    out = Path(config.out_dir)
    if named_out_dir is not None:
        config = config.replace(out_dir=str(named_out_dir))
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists() and not (resume or overwrite):
        raise FileExistsError(f"cifar: {ckpt_path} exists; pass resume=True (--resume) to continue "
                              f"that run or overwrite=True (--overwrite) to start again")
    with output_folder(out, {"experiment": EXPERIMENT, **{k: v for k, v in config.as_dict().items()
                                                          if k not in RESUMABLE}},
                       overwrite, what="run"):
        return _train(config, out, resume, progress, figures, dataset, human_labels,
                      log or (lambda *_: None))


def _train(config, out, resume, progress, figures, dataset, human_labels, log):
    """The body of :func:`run`, in its claimed output folder."""
    ckpt_path = out / CHECKPOINT
    with backend.device(config.device):
        data = prepare_data(config, dataset, human_labels)
        for labels_of, y in (("training", data.labels), ("test", data.test_labels)):
            # once, on the host: the loss does not check the range per batch on a GPU
            losses.check_label_range(f"cifar ({labels_of} labels)", y, data.num_classes)
        info = data.summary(config)
        pipeline = transforms.Pipeline(config.augment, std=config.std)
        dev = config.device
        train_images = pipeline.prepare(backend.to_device(data.train_images, dev))
        labels = backend.to_device(data.labels, dev)
        sampler = make_sampler(config, data.labels, dev)
        evaluator = Evaluator(data, pipeline, config, train_images)
        model = build_model(config, data.num_classes)
        opt, schedule = build_optimizer(config, model)
        loss_fn = loss_schedule(config.loss, **config.loss_params)
        info["augmentation"] = pipeline.describe()
        info["parameters"] = model.num_parameters()

        history, start = History(), 0
        if resume and ckpt_path.exists():
            extra = checkpoint.load(str(ckpt_path), model, opt, schedule, restore_threads=True)
            _check_resumable(extra["config"], config.as_dict())
            history, start = History.from_dict(extra["history"]), extra["iteration"]
            if start > config.iterations:
                raise ValueError(f"cifar: the checkpoint is at iteration {start}, beyond "
                                 f"iterations={config.iterations}")
            log(f"resuming {out} at iteration {start}")
        log(f"{config.name}: {info['train_size']} training images ({info['noise']} noise, "
            f"realised rate {info['noise_rate_realised']:.3f}), {info['val_size']} validation, "
            f"{info['test_size']} test; ResNet-{config.depth} ({info['parameters']:,} parameters), "
            f"loss {loss_fn!r}, {config.sampler} batches of {config.batch_size}, device {dev}")
        log(f"augmentation: {info['augmentation']}; {info['eval_train_note']}")

        augment = sampling.RandomStream(config.seed, "augment", dev)

        def batches(it):
            idx = sampler(it)
            return Tensor(pipeline.train(train_images[idx], augment.at(it))), Tensor(labels[idx])

        def on_eval(it, hist):
            checkpoint.save(str(ckpt_path), model, opt, schedule,
                            extra={"iteration": it, "history": hist.to_dict(),
                                   "config": config.as_dict()})
            write_record(out / RESULTS, results_dict(config, info, hist, "running"))

        try:
            history = fit(model, loss_fn, opt, batches, config.iterations, data.num_classes,
                          scheduler=schedule, evaluate=evaluator, eval_every=config.eval_every,
                          log_every=config.log_every, start_iteration=start, history=history,
                          on_eval=on_eval, progress=progress, desc=config.name)
        except Diverged as e:
            results = results_dict(config, info, e.history, "diverged")
            results["summary"]["diverged_by"] = e.iteration
            write_record(out / RESULTS, results)
            log(f"diverged: {e}; the record says so, the last checkpoint is from before")
            return results

    results = results_dict(config, info, history, "done")
    if figures:
        from .report import write_figures  # matplotlib only when drawing
        results["figures"] = [str(p) for p in write_figures(results, out, data.classes)]
    write_record(out / RESULTS, results)
    log(format_summary(results))
    return results


def results_dict(config, info, history, status):
    """The record of a run (tinydm/experiments/runner.py's format)."""
    done = history.evals[-1]["iteration"] if history.evals else 0
    return make_record(EXPERIMENT, status, config, info, summarise(history, config.batch_size),
                       history, done)


def summarise(history, batch_size):
    """Best and final test accuracy (Tables 1 and 9 report both), the final training-set
    metrics, the validation choice and the final ESS (mean over the last evaluation interval)."""
    evals = history.evals
    if not evals:
        return {}
    final = evals[-1]
    summary = accuracy_summary(evals)
    for key in ("train_accuracy_noisy_labels", "train_accuracy_clean_labels", "mean_p_clean",
                "mean_p_noisy", "noisy_memorised", "noisy_corrected", "test_class_histogram"):
        summary[f"{key}_final"] = final[key]
    if "noisy_memorised_pairs" in final:
        summary["noisy_memorised_pairs_final"] = final["noisy_memorised_pairs"]
    if "val_accuracy" in final:
        best_val = max(evals, key=lambda e: e["val_accuracy"])
        summary.update(val_accuracy_best=best_val["val_accuracy"],
                       val_accuracy_best_iteration=best_val["iteration"],
                       val_accuracy_final=final["val_accuracy"],
                       test_accuracy_at_best_val=best_val["test_accuracy"])
    previous = evals[-2]["iteration"] if len(evals) > 1 else 0
    recent = [s["ess_fraction"] for s in history.steps if s["iteration"] > previous]
    if recent:
        summary["ess_fraction_final"] = float(np.mean(recent))
        summary["ess_final"] = summary["ess_fraction_final"] * batch_size
    return summary


def format_summary(results):
    """One line in Table 9's columns: best and final test accuracy, training accuracy on the
    corrupted and on the intact labels (%)."""
    s = results["summary"]
    if not s:
        return "no evaluation yet"

    def pct(v):
        return "  -  " if v is None else f"{100 * v:5.1f}"

    line = (f"test best {pct(s['test_accuracy_best'])} (it {s['test_accuracy_best_iteration']}), "
            f"final {pct(s['test_accuracy_final'])}; train corrupted "
            f"{pct(s['train_accuracy_noisy_labels_final'])}, intact "
            f"{pct(s['train_accuracy_clean_labels_final'])}; mean p_i clean "
            f"{pct(s['mean_p_clean_final'])}, noisy {pct(s['mean_p_noisy_final'])}")
    if "val_accuracy_best" in s:
        line += (f"; val best {pct(s['val_accuracy_best'])} (test there "
                 f"{pct(s['test_accuracy_at_best_val'])})")
    return line
