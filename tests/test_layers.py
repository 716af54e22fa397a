"""The layers point one way, envs <- agents <- ros_bridge <- surgeon, and no modules import each other in a circle.

Read from the installed package's source: every import statement, at module level and inside
functions alike.
"""

import ast
import importlib.util
import pkgutil
from pathlib import Path

import pytest

LAYERS = (
    "surgisim.envs",
    "surgisim.agents",
    "surgisim.ros_bridge",
    "surgisim.surgeon",
)  # each may import those before it


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        spec = importlib.util.find_spec(package)
        folder = Path(next(iter(spec.submodule_search_locations)))
        found[package] = folder / "__init__.py"
        for info in pkgutil.walk_packages([str(folder)], prefix=f"{package}."):
            path = folder.joinpath(*info.name.split(".")[2:])
            found[info.name] = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The surgisim modules that module ``name`` imports anywhere in its source."""
    imported = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).rstrip(".")
            for alias in node.names:
                imported.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {module for module in imported if module.startswith("surgisim.")}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if module == layer or module.startswith(f"{layer}."))


def test_the_package_is_read_whole():
    assert {"surgisim.envs.core", "surgisim.agents.cli", "surgisim.ros_bridge.runner"} <= set(MODULES)
    assert "surgisim.agents.models" in GRAPH["surgisim.agents.evaluate"]  # function-level imports count too


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module):
    upward = sorted(target for target in GRAPH[module] if _layer(target) > _layer(module))
    assert not upward, f"{module} imports {upward}, a layer above its own"


def test_no_modules_import_each_other_in_a_circle():
    # Tarjan's strongly connected components: any with two or more modules is a circle.
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in GRAPH[module] & set(GRAPH):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not circles, f"modules that import each other in a circle: {circles}"


# What the layers above agents may take from it: what concerns policies, and the command's entry.
# Helpers every layer needs (strict files, numbers, atomic writes, argument types) live on the
# ground floor, in surgisim.envs (documents, files, arguments).
POLICY_API = {"surgisim.agents.evaluate": {"make_policy", "check_policy"}, "surgisim.agents.cli": {"main"}}


@pytest.mark.parametrize("module", sorted(name for name in MODULES if _layer(name) > 1))
def test_upper_layers_take_only_policies_from_agents(module):
    taken = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("surgisim.agents"):
            taken.update((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            taken.update((alias.name, "*") for alias in node.names if alias.name.startswith("surgisim.agents"))
    helpers = sorted(f"{source}.{name}" for source, name in taken if name not in POLICY_API.get(source, set()))
    assert not helpers, f"{module} takes {helpers} from agents; helpers belong on the ground floor (surgisim.envs)"
