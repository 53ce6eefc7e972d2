"""Build the shipped text task ``docstrings`` from installed packages' docstrings (no downloads).

    python -m benchmarks.mlebench.tasks.build_text   # rewrites benchmarks/mlebench/tasks/docstrings/

Which library wrote a paragraph of documentation: numpy, pandas, scikit-learn or
Python's standard library? The paragraphs are the docstrings of the public functions,
classes and methods of a fixed list of modules (``SOURCES``), cut at blank lines, with
doctest examples and section underlines dropped, 80 to 600 characters, each kept once
(a paragraph two libraries share is dropped). A small stand-in for MLE-bench's text
competitions (spooky-author-identification: ``train.csv`` of ``id,text,author``, one
probability column per author, multi-class log loss); here the text column is
``paragraph`` and the label column ``library``.

The layout (MLE-bench's): ``prepared/public/train.csv`` (``id,paragraph,library``),
``test.csv`` (``id,paragraph``), ``sample_submission.csv`` (``id`` and one column per
library, the uniform prior); ``prepared/private/answers.csv`` (the one-hot answers).
The leaderboard: a spread of ordinary scikit-learn text models, each trained on 25 %,
50 % and 100 % of train.csv and scored on the answers. Deterministic for the same
installed versions (they go in LEADERBOARD.md): the text is what those versions carry.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn import feature_extraction, linear_model, naive_bayes, neighbors
from sklearn.dummy import DummyClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from benchmarks.mlebench import metric_by_name
from benchmarks.mlebench.tasks.build import write_config

HERE = Path(__file__).resolve().parent
TASK_ID = "docstrings"
SEED = 20261204
PER_CLASS = 900  # paragraphs per library (each has 2,300 to 4,800 usable ones in the modules below)
METRIC = "multi-class-log-loss"
SOURCES = {
    "numpy": ["numpy", "numpy.linalg", "numpy.fft", "numpy.random", "numpy.ma", "numpy.polynomial.polynomial",
              "numpy.lib.stride_tricks", "numpy.testing", "numpy.char", "numpy.strings", "numpy.rec"],
    "pandas": ["pandas", "pandas.api.types", "pandas.plotting", "pandas.api.extensions", "pandas.errors"],
    "scikit-learn": ["sklearn.linear_model", "sklearn.ensemble", "sklearn.tree", "sklearn.svm", "sklearn.neighbors",
                     "sklearn.cluster", "sklearn.decomposition", "sklearn.preprocessing", "sklearn.model_selection",
                     "sklearn.metrics", "sklearn.feature_extraction.text", "sklearn.pipeline", "sklearn.impute",
                     "sklearn.naive_bayes", "sklearn.manifold", "sklearn.mixture", "sklearn.covariance",
                     "sklearn.calibration", "sklearn.inspection", "sklearn.utils", "sklearn.compose",
                     "sklearn.feature_selection", "sklearn.kernel_approximation", "sklearn.random_projection"],
    "python": ["os", "pathlib", "collections", "itertools", "functools", "json", "re", "typing", "asyncio",
               "argparse", "logging", "subprocess", "email.message", "http.client", "urllib.request", "unittest",
               "datetime", "decimal", "fractions", "statistics", "random", "string", "textwrap", "shutil",
               "tempfile", "threading", "multiprocessing", "concurrent.futures", "inspect", "ast", "dis", "pickle",
               "csv", "sqlite3", "xml.etree.ElementTree", "zipfile", "tarfile", "gzip", "hashlib", "hmac", "socket",
               "ssl", "selectors", "contextlib", "dataclasses", "enum", "abc", "copy", "pprint", "heapq", "bisect",
               "io", "calendar", "locale", "gettext", "traceback", "warnings", "weakref", "types", "difflib",
               "configparser", "shlex", "glob", "fnmatch", "filecmp", "uuid", "ipaddress", "mailbox", "mimetypes",
               "base64", "html.parser", "wsgiref.simple_server", "pdb", "timeit", "doctest", "queue", "sched",
               "imaplib", "smtplib", "ftplib", "codecs", "tokenize", "importlib", "zipimport", "pkgutil", "cmd",
               "optparse", "getopt", "operator", "numbers", "struct", "bdb", "trace", "pydoc"],
}
_UNDERLINE = re.compile(r"^\s*[-=~^]{3,}\s*$")

MODELS = {
    **{f"tfidf-logreg-C{c}": lambda c=c: make_pipeline(
        feature_extraction.text.TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        linear_model.LogisticRegression(C=c, max_iter=2000)) for c in (0.1, 1.0, 10.0, 100.0)},
    **{f"char-tfidf-logreg-C{c}": lambda c=c: make_pipeline(
        feature_extraction.text.TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True),
        linear_model.LogisticRegression(C=c, max_iter=2000)) for c in (1.0, 10.0)},
    **{f"naive-bayes-{a}": lambda a=a: make_pipeline(feature_extraction.text.CountVectorizer(min_df=2),
                                                     naive_bayes.MultinomialNB(alpha=a)) for a in (0.01, 0.1, 1.0)},
    "complement-nb": lambda: make_pipeline(feature_extraction.text.CountVectorizer(min_df=2), naive_bayes.ComplementNB()),
    **{f"tfidf-knn-{k}": lambda k=k: make_pipeline(feature_extraction.text.TfidfVectorizer(min_df=2),
                                                   neighbors.KNeighborsClassifier(k)) for k in (5, 15, 50)},
    "prior": lambda: DummyClassifier(strategy="prior"),
}


def paragraphs(doc: str):
    """The usable paragraphs of one docstring, each as one line."""
    for block in re.split(r"\n\s*\n", inspect.cleandoc(doc)):
        lines = block.splitlines()
        if any(line.lstrip().startswith((">>>", "...", "$ ")) for line in lines):
            continue
        # a section title is the line above its underline (numpydoc): drop both
        keep = [line for i, line in enumerate(lines) if not _UNDERLINE.match(line)
                and not (i + 1 < len(lines) and _UNDERLINE.match(lines[i + 1]))]
        text = " ".join(line.strip() for line in keep).strip()
        if 80 <= len(text) <= 600 and text.count(" ") >= 10:
            yield text


def _owner_ok(library: str, obj) -> bool:
    root = (getattr(obj, "__module__", None) or "").split(".")[0]
    if library == "python":
        return root in sys.stdlib_module_names
    return root == {"scikit-learn": "sklearn"}.get(library, library)


def collect(library: str) -> list[str]:
    """Every usable paragraph of ``library``'s modules in ``SOURCES``, in a fixed order."""
    found, seen = [], set()
    for name in SOURCES[library]:
        module = importlib.import_module(name)
        for attr in sorted(a for a in vars(module) if not a.startswith("_")):
            obj = getattr(module, attr)
            if id(obj) in seen or not (inspect.isclass(obj) or callable(obj)) or not _owner_ok(library, obj):
                continue
            seen.add(id(obj))
            members = [obj] + ([vars(obj)[m] for m in sorted(vars(obj)) if not m.startswith("_")]
                               if inspect.isclass(obj) else [])  # raw: no descriptor runs
            for member in members:
                doc = member.__doc__ if isinstance(getattr(member, "__doc__", None), str) else None
                if doc:
                    found.extend(paragraphs(doc))
    return list(dict.fromkeys(found))


def _leaderboard(train: pd.DataFrame, test: pd.DataFrame, classes: list[str], truth: np.ndarray) -> pd.DataFrame:
    metric, rows = metric_by_name(METRIC), []
    for (name, make), frac in itertools.product(MODELS.items(), (0.25, 0.5, 1.0)):
        n = int(len(train) * frac)
        model = make().fit(train.paragraph[:n], train.library[:n])
        proba = np.zeros((len(test), len(classes)))
        proba[:, [classes.index(c) for c in model.classes_]] = model.predict_proba(test.paragraph)
        rows.append({"team": f"{name}@{int(frac * 100)}%", "score": round(metric.score(truth, proba), 5)})
    return pd.DataFrame(rows).sort_values("score", kind="stable").reset_index(drop=True)


def build() -> None:
    rng = np.random.default_rng(SEED)
    texts = {lib: collect(lib) for lib in SOURCES}
    shared = {t for a, b in itertools.combinations(texts.values(), 2) for t in set(a) & set(b)}
    rows = []
    for lib, found in texts.items():
        found = [t for t in found if t not in shared]
        if len(found) < PER_CLASS:
            raise SystemExit(f"{lib}: only {len(found)} paragraphs (need {PER_CLASS}): add modules to SOURCES")
        rows += [(t, lib) for t in rng.choice(np.asarray(found, dtype=object), PER_CLASS, replace=False)]
    frame = pd.DataFrame(rows, columns=["paragraph", "library"])
    frame.insert(0, "id", [f"p{v:07x}" for v in rng.choice(16 ** 7, len(frame), replace=False)])
    train, test = train_test_split(frame, test_size=0.25, random_state=SEED, stratify=frame.library)
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    classes = list(SOURCES)
    out = HERE / TASK_ID
    public, private = out / "prepared" / "public", out / "prepared" / "private"
    public.mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)
    train.to_csv(public / "train.csv", index=False)
    test[["id", "paragraph"]].to_csv(public / "test.csv", index=False)
    onehot = (test.library.to_numpy()[:, None] == np.asarray(classes)[None, :]).astype(int)
    pd.DataFrame({"id": test.id, **{c: onehot[:, j] for j, c in enumerate(classes)}}).to_csv(
        private / "answers.csv", index=False)
    pd.DataFrame({"id": test.id, **{c: 1 / len(classes) for c in classes}}).to_csv(
        public / "sample_submission.csv", index=False)
    board = _leaderboard(train, test, classes, onehot)
    board.to_csv(out / "leaderboard.csv", index=False)
    write_config(out, TASK_ID, METRIC)
    (out / "description.md").write_text(
        f"# {TASK_ID}\n\nWhich library's documentation is each paragraph from: {', '.join(classes)} (Python's "
        f"standard library)? The paragraphs are cut from the docstrings of public functions, classes and "
        f"methods, without code examples.\n\n"
        f"- `train.csv`: {len(train)} rows: `id`, `paragraph` (the text) and `library` (one of "
        f"{', '.join(classes)}).\n"
        f"- `test.csv`: {len(test)} rows: `id` and `paragraph`.\n"
        f"- Submit `submission.csv` with the columns of `sample_submission.csv`: `id` and one column per library "
        f"holding the probability that the paragraph is from it; each row sums to 1.\n\n"
        f"Metric: multi-class log loss (lower is better).\n\n"
        f"Data: collected by `python -m benchmarks.mlebench.tasks.build_text` (seed {SEED}) from the installed "
        f"packages, {PER_CLASS} paragraphs per library, split 75/25.\n")
    (out / "LEADERBOARD.md").write_text(
        f"# How leaderboard.csv of {TASK_ID} was made\n\n`python -m benchmarks.mlebench.tasks.build_text` "
        f"(Python {sys.version.split()[0]}, numpy {np.__version__}, pandas {pd.__version__}, scikit-learn "
        f"{sklearn.__version__}: the text is what these versions carry): {len(board)} 'teams', each a "
        f"scikit-learn text model ({', '.join(MODELS)}) trained on the first 25 %, 50 % or 100 % of train.csv "
        f"and scored ({METRIC}) on the private answers. Best first.\n\n"
        f"Best {board.score.iloc[0]}, median {board.score.median()}, worst {board.score.iloc[-1]}.\n")
    print(f"{TASK_ID}: {len(train)} train, {len(test)} test, leaderboard of {len(board)} "
          f"(best {board.score.iloc[0]}, median {board.score.median()})")


if __name__ == "__main__":
    build()
