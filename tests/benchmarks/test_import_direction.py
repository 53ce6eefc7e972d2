"""The arrows point one way: the MLE-bench library (benchmarks/mlebench) is imported by
cluster/ and actors/ and imports none of them, nor the bus (issue 12's code layout)."""

import ast
from pathlib import Path

import benchmarks.mlebench

LIBRARY = Path(benchmarks.mlebench.__file__).parent
PRODUCT = ("cluster", "actors", "bus", "benchmarks.perf")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_mlebench_library_imports_nothing_of_the_product():
    files = sorted(LIBRARY.rglob("*.py"))
    assert len(files) >= 8
    wrong = {f"{f.relative_to(LIBRARY)}: {name}" for f in files for name in _imports(f)
             if any(name == p or name.startswith(p + ".") for p in PRODUCT)}
    assert not wrong, wrong
