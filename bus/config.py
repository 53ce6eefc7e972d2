"""Settings of the bus, as a pydantic model (loadable from YAML, saved with results)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_ROOT = Path("~/.aisci").expanduser()


def default_root() -> Path:
    """``$AISCI_ROOT`` if set, else ``~/.aisci``: a shared filesystem path on a cluster."""
    return Path(os.environ.get("AISCI_ROOT") or DEFAULT_ROOT).expanduser()


class BusConfig(BaseModel):
    """How the File-as-Bus stores files and events."""

    model_config = ConfigDict(extra="forbid")

    root: Path = Field(
        default_factory=default_root,
        description="Folder holding every project and the index. On a cluster: a shared "
        "filesystem (NFS, EFS, Lustre) mounted at the same path on every node.",
    )
    fsync_index: bool = Field(
        default=True,
        description="fsync each index row before a write returns. Off, a power loss (not a "
        "killed process) can lose the last rows; `aisci bus repair` re-derives them from files.",
    )
    max_file_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Largest file one bus write may carry. Bigger artifacts (checkpoints) belong "
        "in an experiment's outputs folder, written by the run itself.",
    )
    compact_rows: int = Field(
        default=500,
        gt=0,
        description="A writer compacts a project's journals into a Parquet segment once its own "
        "journal holds this many rows.",
    )
    max_segments: int = Field(
        default=8,
        gt=1,
        description="When a project has more Parquet segments than this, compaction merges them into one.",
    )
