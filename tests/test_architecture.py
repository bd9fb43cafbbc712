"""The package map of docs/architecture.md holds: every module-level import inside tinydm goes
from a package to one the table allows, so the layers stay layers (and there is no cycle)."""

import ast
from pathlib import Path

import tinydm

ROOT = Path(tinydm.__file__).parent
BASE = {"backend": set(), "files": set(), "tensor": {"backend"},
        "functional": {"backend", "tensor"}, "gradcheck": {"backend", "tensor"},
        "operators": {"tensor", "functional"}, "edf": {"backend"},
        "losses": {"backend", "tensor", "edf"}, "nn": {"backend", "tensor", "functional"},
        "optim": {"backend", "tensor", "nn"}, "checkpoint": {"backend", "files"},
        "data": {"backend", "files"}, "train": {"backend", "tensor", "edf", "losses"},
        "experiments.runner": {"backend", "files", "nn", "train"},
        "experiments.toy": {"tensor", "losses"}, "exercises": {"tensor", "gradcheck", "losses"}}
BELOW_EXPERIMENTS = {"backend", "files", "tensor", "functional", "gradcheck", "operators", "edf",
                     "losses", "nn", "optim", "checkpoint", "data", "train",
                     "experiments.runner"}
ALLOWED = {**BASE,
           "experiments.imdb": BELOW_EXPERIMENTS, "experiments.cifar": BELOW_EXPERIMENTS,
           "experiments.sweep": BELOW_EXPERIMENTS,
           "experiments": {"experiments.runner", "experiments.imdb", "experiments.cifar",
                           "experiments.sweep"},
           "plot": {"files", "tensor", "edf", "losses", "train", "experiments.runner",
                    "experiments.toy"}}


def package_of(parts):
    """``("experiments", "imdb", "table")`` -> ``"experiments.imdb"``; ``("losses", "dm")`` ->
    ``"losses"``; ``("tensor",)`` -> ``"tensor"``."""
    if parts and parts[0] == "experiments" and len(parts) > 1:
        return "experiments." + parts[1]
    return parts[0] if parts else "tinydm"


def module_level_imports():
    """``(module path, its package, the package it imports)`` for every relative import at a
    module's top level (imports inside functions are lazy by design: plot from the reports)."""
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        here = list(path.relative_to(ROOT).parent.parts)
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            base = here[:len(here) - (node.level - 1)]
            module = node.module.split(".") if node.module else []
            for alias in node.names:
                target = base + module + ([] if node.module else [alias.name])
                yield path.relative_to(ROOT), package_of(parts), package_of(target)


def test_every_module_level_import_follows_the_package_map():
    wrong = sorted(f"{path}: {source} imports {target}"
                   for path, source, target in module_level_imports()
                   if source != target and source != "tinydm"
                   and target not in ALLOWED.get(source, set()))
    assert not wrong, "imports outside docs/architecture.md's table:\n" + "\n".join(wrong)


def test_the_map_knows_every_package():
    found = {source for _, source, _ in module_level_imports()} - {"tinydm"}
    assert found <= set(ALLOWED), f"packages missing from the map: {sorted(found - set(ALLOWED))}"
