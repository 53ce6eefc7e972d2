"""The arrows point one way: the benchmark libraries (benchmarks/mlebench, benchmarks/paperbench)
are imported by cluster/ and actors/ and import none of them, nor the bus (issue 12's code
layout; issue 15 adds PaperBench under the same rule)."""

import ast
from pathlib import Path

import pytest

import benchmarks.mlebench
import benchmarks.paperbench

PRODUCT = ("cluster", "actors", "bus", "benchmarks.perf")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(("library", "at_least"), [(benchmarks.mlebench, 8), (benchmarks.paperbench, 8)],
                         ids=["mlebench", "paperbench"])
def test_the_benchmark_libraries_import_nothing_of_the_product(library, at_least):
    root = Path(library.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert len(files) >= at_least
    wrong = {f"{f.relative_to(root)}: {name}" for f in files for name in _imports(f)
             if any(name == p or name.startswith(p + ".") for p in PRODUCT)}
    assert not wrong, wrong
