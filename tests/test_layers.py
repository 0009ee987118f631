"""The layering docs/architecture.md draws, checked on the imports themselves (every import
statement, also those inside functions): no circles, no lower layer importing a higher one, and
nothing outside tests/ importing tests/.

    lance, native            the chip and the pure functions: import neither pcap_backend nor a2065
    pcap_backend             host side, bridge, capture codec: never imports a2065
    a2065 (top level)        the card (board, autoconfig, snapshot, adapters): no pcap_backend, no tooling
    a2065.drivers/runners/cli/rig   the tooling: may import everything below
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lance", "native", "pcap_backend", "a2065")
TOOLING = ("a2065.drivers", "a2065.runners", "a2065.cli", "a2065.rig", "a2065.__main__")
# Development scripts that live beside what they serve but are no part of its library: the
# libFuzzer seed writer reads the fixture captures through pcap_backend's codec.
SCRIPTS = ("native.fuzz",)
KNOWN_CIRCLES: set = set()   # none: every circle is a failure


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(*tops):
    for top in tops:
        yield from sorted((ROOT / top).rglob("*.py"))


def _type_only_imports(tree: ast.AST) -> set:
    """The import statements inside ``if TYPE_CHECKING:`` blocks (annotations only)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                out.update(n for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return out


def import_graph(run_time_only: bool = False) -> dict:
    """module -> the project modules it imports (a `from pkg import submodule` counts as the
    submodule only: a package's own __init__ is not a dependency of its submodules).
    ``run_time_only``: leave out the imports under ``if TYPE_CHECKING:`` (type annotations)."""
    mods = {_module(p): p for p in _sources(*PACKAGES)}
    graph = {}
    for m, p in mods.items():
        package = m if p.name == "__init__.py" else m.rpartition(".")[0]
        out = set()
        tree = ast.parse(p.read_text(), str(p))
        skip = _type_only_imports(tree) if run_time_only else set()
        for node in ast.walk(tree):
            if node in skip:
                continue
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                out.update(subs)
                if len(subs) < len(node.names):
                    out.add(target)
        graph[m] = {t for t in out if t in mods and t != m}
    return graph


def circles(graph: dict) -> list:
    """Strongly connected components of more than one module (iterative Tarjan)."""
    index, low, on, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(frozenset(comp))
    return found


def _under(m: str, prefix: str) -> bool:
    return m == prefix or m.startswith(prefix + ".")


def test_the_circle_finder_finds_a_circle_through_three_modules():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(g) == [frozenset("abc")]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_an_import_under_type_checking_is_type_only_and_no_other():
    tree = ast.parse("import a\nif TYPE_CHECKING:\n    from b import c\n    import d\nif x:\n    import e\n")
    names = sorted(n.module if isinstance(n, ast.ImportFrom) else n.names[0].name
                   for n in _type_only_imports(tree))
    assert names == ["b", "d"]


def test_no_module_imports_itself_in_a_circle():
    # at run time: a module may name another's types for annotations only (if TYPE_CHECKING:)
    # while that one imports it, as a2065.snapshot names the board it saves
    found = set(circles(import_graph(run_time_only=True)))
    assert found <= KNOWN_CIRCLES, sorted(map(sorted, found - KNOWN_CIRCLES))


def test_no_lower_layer_imports_a_higher_one():
    bad = []
    for m, deps in import_graph().items():
        if any(_under(m, s) for s in SCRIPTS):
            continue
        for d in deps:
            if (_under(m, "lance") or _under(m, "native")) and (_under(d, "pcap_backend") or _under(d, "a2065")):
                bad.append((m, d))
            if _under(m, "pcap_backend") and _under(d, "a2065"):
                bad.append((m, d))
            card = _under(m, "a2065") and not any(_under(m, t) for t in TOOLING)
            if card and (_under(d, "pcap_backend") or any(_under(d, t) for t in TOOLING)):
                bad.append((m, d))
    assert not bad, bad


def test_nothing_outside_tests_imports_the_tests():
    names = {p.stem for p in (ROOT / "tests").glob("*.py")} | {"tests"}
    bad = []
    for p in _sources(*PACKAGES, "bench", "tools", "fixtures"):
        text = p.read_text()
        for node in ast.walk(ast.parse(text, str(p))):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            bad += [(str(p.relative_to(ROOT)), m) for m in mods if m.split(".")[0] in names]
        if re.search(r"""sys\.path.*["']tests["']""", text):
            bad.append((str(p.relative_to(ROOT)), "sys.path += tests"))
    assert not bad, bad


def test_importing_the_card_loads_no_tooling_no_backend_and_no_test_library():
    """`import a2065` is what an emulator does: it must not pull in pcap_backend, the tooling
    subpackages (drivers, runners, cli, rig), the hypothesis strategies or hypothesis itself."""
    import json
    import subprocess
    import sys
    code = ("import json, sys, a2065; "
            "print(json.dumps(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('pcap_backend', 'hypothesis', 'pytest') "
            "or m.startswith(('a2065.drivers', 'a2065.runners', 'a2065.cli', 'a2065.rig', "
            "'a2065.strategies')))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT),
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
