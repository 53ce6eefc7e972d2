"""A competition folder as MLE-bench lays it out, read and checked.

MLE-bench keeps a competition in two places: its definition in the ``mlebench``
package (``mlebench/competitions/<id>/config.yaml``, ``description.md``,
``leaderboard.csv``) and its data in the data dir that ``mlebench prepare`` fills
(``<data-dir>/<id>/prepared/public/`` with a copy of ``description.md``, and
``<data-dir>/<id>/prepared/private/``). The config's ``dataset.answers`` and
``dataset.sample_submission`` are relative to the data dir (``<id>/prepared/...``).

We take both shapes:

- one folder holding everything (our shipped tasks, and any folder a user builds)::

      config.yaml  description.md  leaderboard.csv (optional)  prepared/public/  prepared/private/

- ``locate(id, data_dir)``: MLE-bench's data dir, the definition found beside the data,
  in an installed ``mlebench`` package, or given (``config=``, ``leaderboard=``); for
  the 22 Lite competitions our registry (``competitions.py``) stands in for a missing
  config.

Example::

    >>> cfg = CompetitionConfig.load(Path("benchmarks/mlebench/tasks/digits/config.yaml"))
    >>> cfg.id, cfg.grader.name
    ('digits', 'accuracy')
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .competitions import COMPETITIONS

__all__ = ["CompetitionConfig", "InvalidTask", "Located", "locate", "mlebench_competitions_dir"]


class InvalidTask(ValueError):
    """The competition folder is incomplete or malformed; the message (one line) says what to fix."""


class DatasetConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    answers: str = Field(description="The private answers, relative to the data dir: `<id>/prepared/private/...`.")
    sample_submission: str = Field(description="The sample submission, relative to the data dir.")


class GraderConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(description="The metric's name (benchmarks.mlebench.metric_by_name).")
    grade_fn: str | None = Field(default=None, description="MLE-bench's grading function (not used here).")


class CompetitionConfig(BaseModel):
    """MLE-bench's ``config.yaml`` of a competition (the fields we read; others are kept)."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1, description="The competition id.")
    name: str = Field(default="", description="Its human name.")
    competition_type: str = Field(default="simple", description="MLE-bench: `simple` or `code`.")
    awards_medals: bool = Field(default=False, description="Whether Kaggle awarded medals; MLE-bench (and we) "
                                "rank every competition on its leaderboard all the same.")
    description: str | None = Field(default=None, description="The statement's path in MLE-bench's repository.")
    dataset: DatasetConfig
    grader: GraderConfig

    @classmethod
    def load(cls, path: Path) -> CompetitionConfig:
        """Raises ``InvalidTask`` (one line) when the file is missing or not such a config."""
        try:
            text = path.read_text()
        except OSError as e:  # a --config that does not exist, a folder, no permission
            raise InvalidTask(f"{path}: cannot read the competition config ({e.strerror or e})") from None
        except UnicodeDecodeError:
            raise InvalidTask(f"{path}: not a text file; give MLE-bench's config.yaml of the competition") from None
        try:
            return cls.model_validate(yaml.safe_load(text))
        except (yaml.YAMLError, ValidationError, UnicodeDecodeError) as e:
            first = str(e).splitlines()
            detail = f"{first[0]}: {first[2].strip()}" if isinstance(e, ValidationError) and len(first) > 2 else first[0]
            raise InvalidTask(f"{path}: not an MLE-bench competition config ({detail}); it needs id, "
                              "dataset.answers, dataset.sample_submission and grader.name") from None

    @classmethod
    def of_lite(cls, competition_id: str) -> CompetitionConfig:
        """The config of a Lite competition, from our registry (its grader, dataset paths)."""
        c = COMPETITIONS[competition_id]
        return cls(id=c.id, name=c.id, dataset=DatasetConfig(answers=c.answers, sample_submission=c.sample_submission),
                   grader=GraderConfig(name=c.grader_name))

    def in_folder(self, root: Path, relative: str) -> Path:
        """A ``dataset`` path of this config (relative to the data dir: ``<id>/...``)
        inside the competition folder ``root``, whatever the folder's own name."""
        parts = Path(relative).parts
        return root.joinpath(*parts[1:]) if parts and parts[0] == self.id else root.parent / relative


class Located(BaseModel):
    """Where a competition's parts are."""

    root: Path = Field(description="The competition's data folder (holds prepared/).")
    config: Path | None = Field(description="Its config.yaml; None: a Lite competition's, from our registry.")
    leaderboard: Path | None = Field(description="Its leaderboard.csv; None: graded without medals.")


def mlebench_competitions_dir() -> Path | None:
    """``mlebench/competitions`` of an installed MLE-bench (found, not imported: its
    import pulls in its dependencies), or None."""
    try:
        spec = importlib.util.find_spec("mlebench")
    except (ImportError, ValueError):
        return None
    folders = list(spec.submodule_search_locations or []) if spec else []
    return next((Path(f) / "competitions" for f in folders if (Path(f) / "competitions").is_dir()), None)


def locate(competition_id: str, data_dir: Path, config: Path | None = None,
           leaderboard: Path | None = None) -> Located:
    """A competition in MLE-bench's data dir: ``data_dir/<id>/prepared/...``; its
    definition (config.yaml, leaderboard.csv) from, in order: what is given, the
    competition's data folder, an installed ``mlebench`` package
    (``mlebench/competitions/<id>/``), our registry (Lite competitions; no leaderboard).

    Raises:
        InvalidTask: no such folder, or no config to be found (says which flag to give).
    """
    root = (Path(data_dir).expanduser() / competition_id).resolve()
    if not (root / "prepared").is_dir():
        raise InvalidTask(f"{root} has no prepared/ folder: prepare the competition first "
                          f"(`mlebench prepare -c {competition_id} --data-dir {data_dir}`), or give its folder")
    homes = [root] + ([d / competition_id] if (d := mlebench_competitions_dir()) else [])
    if config is None:
        config = next((h / "config.yaml" for h in homes if (h / "config.yaml").is_file()), None)
        if config is None and competition_id not in COMPETITIONS:
            raise InvalidTask(f"no config.yaml for {competition_id!r} in {root} nor in an installed mlebench: "
                              "give it with --config (MLE-bench's mlebench/competitions/<id>/config.yaml)")
    else:
        homes.insert(0, Path(config).parent)
    if leaderboard is None:
        leaderboard = next((h / "leaderboard.csv" for h in homes if (h / "leaderboard.csv").is_file()), None)
    return Located(root=root, config=config, leaderboard=leaderboard)
