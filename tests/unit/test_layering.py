"""The package's rooms import downward only, and no module imports
itself back through others.

Every import counts, a function's lazy import included: a lazy import
defers a cost, it does not change who depends on whom.
"""

import ast
import pathlib

import pci_passthrough

PACKAGE = pathlib.Path(pci_passthrough.__file__).parent

#: The rooms, lowest first. A room may import its own modules and any
#: room of a lower layer; rooms of one layer never import each other.
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(layer) for layer in (
    {"exception"},
    {"model"},
    {"config"},
    {"discovery", "hygiene", "metrics", "network"},
    {"ledger"},
    {"tracker", "placement"},
    {"doctor"},
    {"agent"},
    {"nova"},
    {"cli", "fixtures"},
    {"demo"},
    {"__init__"},
))
#: Modules that belong to another room than their folder says.
ROOM_OF = {
    # The privsep context sits where privsep-helper finds it by name.
    "pci_passthrough.privsep": "hygiene",
    # The options where a fork imports them.
    "pci_passthrough.opts": "config",
}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def room(module: str) -> str:
    if module in ROOM_OF:
        return ROOM_OF[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(room_name: str) -> int:
    for index, rooms in enumerate(LAYERS):
        if room_name in rooms:
            return index
    raise AssertionError(f"room {room_name} is in no layer")


def imports(path: pathlib.Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}"
                                     for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    # ``from pci_passthrough import exception`` names the package only
    # to reach the module; the package's own lazy exports are its API.
    return {name: imports(path, modules) - {name, "pci_passthrough"}
            for name, path in paths.items()}


def test_every_room_has_a_layer():
    for module in import_graph():
        layer(room(module))


def test_rooms_import_downward_only():
    offenders = []
    for module, targets in import_graph().items():
        mine = room(module)
        for target in targets:
            theirs = room(target)
            if theirs == mine:
                continue
            if layer(theirs) >= layer(mine):
                offenders.append(f"{module} ({mine}) imports {target} "
                                 f"({theirs})")
    assert sorted(offenders) == []


def test_no_import_cycle():
    graph = import_graph()
    done: set[str] = set()
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append(" -> ".join([*path[path.index(module):], module]))
            return
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert cycles == []


def test_a_room_that_imports_upward_is_found(tmp_path):
    # The check itself: a lower room importing a higher one is reported.
    source = tmp_path / "x.py"
    source.write_text("from pci_passthrough.agent import HostAgent\n")
    assert imports(source, {"pci_passthrough.agent"}) == {
        "pci_passthrough.agent"}
    assert layer(room("pci_passthrough.model.device")) < layer(
        room("pci_passthrough.agent"))
