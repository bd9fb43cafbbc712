"""The package map of docs/architecture.md holds: every module-level import inside tinydm goes
from a package to one the table allows, so the layers stay layers; and no two modules import
each other, not even through an import inside a function; no module is over 400 lines."""

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
        "exercises": {"tensor", "gradcheck", "losses"}}
BELOW_EXPERIMENTS = {"backend", "files", "tensor", "functional", "gradcheck", "operators", "edf",
                     "losses", "nn", "optim", "checkpoint", "data", "train",
                     "experiments.runner"}
ALLOWED = {**BASE,
           "experiments.imdb": BELOW_EXPERIMENTS, "experiments.cifar": BELOW_EXPERIMENTS,
           "experiments.sweep": BELOW_EXPERIMENTS,
           "experiments": {"experiments.runner", "experiments.imdb", "experiments.cifar",
                           "experiments.sweep"},
           "plot": {"files", "tensor", "edf", "losses", "train", "experiments.runner"}}


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


def module_name(parts):
    return ".".join(parts) or "tinydm"


def resolve(parts):
    """The dotted name of the module or package ``parts`` names inside tinydm, else None."""
    path = ROOT.joinpath(*parts)
    found = path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()
    return module_name(parts) if found else None


def import_graph():
    """``{module: modules it imports}`` over every relative import, at any depth of the code."""
    graph = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        here = list(path.relative_to(ROOT).parent.parts)
        edges = graph.setdefault(module_name(parts), set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here[:len(here) - (node.level - 1)]
                module = node.module.split(".") if node.module else []
                for alias in node.names:  # a submodule, or a name from a module or package
                    target = resolve(base + module + [alias.name]) or resolve(base + module)
                    if target not in (None, module_name(parts)):
                        edges.add(target)
    return graph


def cycles(graph):
    """The import cycles of ``graph``: each strongly connected group of two or more modules."""
    order, low, stack, found = {}, {}, [], []
    for root in graph:
        if root in order:
            continue
        work = [(root, iter(sorted(graph[root])))]
        order[root] = low[root] = len(order)
        stack.append(root)
        while work:  # Tarjan's algorithm, iterative
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in order:
                    order[w] = low[w] = len(order)
                    stack.append(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in stack:
                    low[v] = min(low[v], order[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == order[v]:
                group = []
                while not group or group[-1] != v:
                    group.append(stack.pop())
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_even_through_imports_inside_functions():
    graph = import_graph()
    assert "experiments.cifar.report" in graph["experiments.cifar.training"]  # lazy ones count
    assert not cycles(graph), f"import cycles: {cycles(graph)}"


def test_every_sweep_experiment_has_an_adapter():
    from tinydm.experiments import sweep

    assert tuple(sweep.ADAPTERS) == sweep.grid.EXPERIMENTS


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in sorted(ROOT.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"split these modules (docs/architecture.md): {long}"
