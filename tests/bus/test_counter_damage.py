"""A damaged sequence counter loses nothing and never makes a number repeat: readers
and writers refuse it with a message naming the fix, and repair sets it past the
highest sequence number in the index (damage made on real files; the CLI run as a
real process)."""

import subprocess
import sys
from pathlib import Path

import pytest

from bus import Bus, BusFault
from bus.repair import repair
from tests.bus.test_segment_damage import facts, make_history

REPO = Path(__file__).resolve().parents[2]


def test_garbage_in_the_counter_is_repaired_by_the_cli(bus):
    """Garbage in SEQ made `aisci bus repair` and resume crash (ValueError)."""
    before = make_history(bus, 5)
    seq_file = bus.root / "index" / "journal" / "p" / "SEQ"
    seq_file.write_bytes(b"garbage\n")
    with pytest.raises(BusFault, match="run `aisci bus repair p`") as raised:  # a CounterDamaged
        Bus(bus.root).project("p").events()
    assert type(raised.value).__name__ == "CounterDamaged"
    out = subprocess.run([sys.executable, "-m", "cluster.cli", "--root", str(bus.root), "bus", "repair", "p"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "sequence counter: was unreadable (b'garbage\\n'); set to 17" in out.stdout
    assert facts(bus.root) == before
    assert Bus(bus.root).project("p").as_role("orchestrator").record("decision", "next")["seq"] == 17


@pytest.mark.parametrize("damage", [b"\x00" * 40, b""], ids=["zeros", "emptied"])
def test_a_zeroed_or_emptied_counter_never_repeats_a_number(bus, damage):
    """A power loss can leave the counter zero-filled or empty: writers must not number
    from 1 again (an empty counter used to mean a new project, so rows got duplicate seqs)."""
    before = make_history(bus, 5)
    bus.index.compact("p")
    Bus(bus.root).project("p").as_role("orchestrator").record("decision", "in a journal")
    (bus.root / "index" / "journal" / "p" / "SEQ").write_bytes(damage)
    writer = Bus(bus.root).project("p").as_role("orchestrator")
    with pytest.raises(BusFault, match="aisci bus repair p"):
        writer.record("decision", "would repeat a number")
    report = repair(Bus(bus.root), "p")
    assert report.counter_fixed and "set to 18" in report.counter_note
    writer.record("decision", "after repair")
    seqs = Bus(bus.root).project("p").events().column("seq").to_pylist()
    assert seqs == list(range(1, 19)) and facts(bus.root)[: len(before)] == before
