"""Build the shipped image task ``glyphs`` from the fonts matplotlib ships (no downloads).

    python -m benchmarks.mlebench.tasks.build_images   # rewrites benchmarks/mlebench/tasks/glyphs/

Letters rendered from the DejaVu and STIX fonts in ``matplotlib.get_data_path()/fonts/ttf``
(sans, serif and mono; regular, bold and italic), each randomly rotated, scaled,
shifted, drawn with a random contrast and noise, as 28x28 grey PNGs: a small stand-in
for MLE-bench's image-folder competitions (dog-breed-identification: ``train/<id>.jpg``,
``labels.csv`` of ``id,breed``, one probability column per class, multi-class log loss).

The layout (MLE-bench's): ``prepared/public/train/<id>.png``, ``test/<id>.png``,
``train.csv`` (``id,letter``: the id without its extension, the class name),
``sample_submission.csv`` (``id`` and one column per letter, the uniform prior);
``prepared/private/answers.csv`` (the one-hot answers). The leaderboard: a spread of
ordinary scikit-learn models on the raw pixels, each trained on 25 %, 50 % and 100 % of
the training images and scored on the answers. Deterministic: the same files on every
run with the same Pillow, matplotlib and scikit-learn (their versions go in LEADERBOARD.md).
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import PIL
import sklearn
from PIL import Image, ImageDraw, ImageFont
from sklearn import ensemble, linear_model, naive_bayes, neighbors
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.mlebench import metric_by_name
from benchmarks.mlebench.tasks.build import write_config

HERE = Path(__file__).resolve().parent
TASK_ID = "glyphs"
SEED = 20261204
SIZE = 28  # pixels a side
CLASSES = tuple("ABCDEFGHJKLMNPRSTUXZ")  # 20 letters (no I/O/Q/V/W/Y: fewer near-twins at 28 px)
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
         "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
         "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
         "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf")
N_TRAIN, N_TEST = 2000, 600
METRIC = "multi-class-log-loss"

MODELS = {
    **{f"logreg-C{c}": lambda c=c: make_pipeline(StandardScaler(), linear_model.LogisticRegression(C=c, max_iter=2000))
       for c in (0.001, 0.01, 0.1, 1.0, 10.0)},
    **{f"knn-{k}": lambda k=k: neighbors.KNeighborsClassifier(k) for k in (1, 5, 25)},
    **{f"forest-{n}": lambda n=n: ensemble.RandomForestClassifier(n, random_state=0) for n in (10, 50, 300)},
    **{f"extra-trees-{n}": lambda n=n: ensemble.ExtraTreesClassifier(n, random_state=0) for n in (50, 300)},
    "naive-bayes": naive_bayes.GaussianNB,
    "prior": lambda: DummyClassifier(strategy="prior"),
}


def render(letter: str, font: Path, rng: np.random.Generator) -> Image.Image:
    """One 28x28 grey image of ``letter``: drawn at 4x, turned up to 15 degrees, scaled
    0.75-1.0, shifted up to 2 px, with a random contrast and Gaussian noise."""
    big = SIZE * 4
    canvas = Image.new("L", (big, big), 0)
    face = ImageFont.truetype(str(font), int(big * 0.7 * rng.uniform(0.75, 1.0)))
    ImageDraw.Draw(canvas).text((big / 2, big / 2), letter, fill=255, font=face, anchor="mm")
    canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR)
    shift = rng.integers(-2 * 4, 2 * 4 + 1, size=2)
    canvas = canvas.transform(canvas.size, Image.AFFINE, (1, 0, int(shift[0]), 0, 1, int(shift[1])))
    pixels = np.asarray(canvas.resize((SIZE, SIZE), Image.LANCZOS), dtype=float) / 255
    low, high = rng.uniform(0, 0.2), rng.uniform(0.8, 1.0)
    pixels = low + (high - low) * pixels + rng.normal(0, 0.05, pixels.shape)
    return Image.fromarray(np.clip(pixels * 255, 0, 255).round().astype(np.uint8), mode="L")


def _leaderboard(X: np.ndarray, y: np.ndarray, X_test: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    metric, rows = metric_by_name(METRIC), []
    for (name, make), frac in itertools.product(MODELS.items(), (0.25, 0.5, 1.0)):
        n = int(len(X) * frac)
        model = make().fit(X[:n], y[:n])
        proba = np.zeros((len(X_test), len(CLASSES)))
        proba[:, [CLASSES.index(c) for c in model.classes_]] = model.predict_proba(X_test)
        rows.append({"team": f"{name}@{int(frac * 100)}%", "score": round(metric.score(truth, proba), 5)})
    return pd.DataFrame(rows).sort_values("score", kind="stable").reset_index(drop=True)


def build() -> None:
    rng = np.random.default_rng(SEED)
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    out = HERE / TASK_ID
    shutil.rmtree(out / "prepared", ignore_errors=True)
    public, private = out / "prepared" / "public", out / "prepared" / "private"
    for folder in (public / "train", public / "test", private):
        folder.mkdir(parents=True)
    n = N_TRAIN + N_TEST
    ids = [f"{v:08x}" for v in rng.choice(16 ** 8, size=n, replace=False)]
    letters = np.asarray(CLASSES)[np.arange(n) % len(CLASSES)]  # balanced
    rng.shuffle(letters)
    pixels = np.empty((n, SIZE * SIZE))
    for i, (name, letter) in enumerate(zip(ids, letters)):
        image = render(letter, fonts / FONTS[rng.integers(len(FONTS))], rng)
        image.save(public / ("train" if i < N_TRAIN else "test") / f"{name}.png", optimize=True)
        pixels[i] = np.asarray(image, dtype=float).ravel() / 255
    train_ids, test_ids = ids[:N_TRAIN], ids[N_TRAIN:]
    pd.DataFrame({"id": train_ids, "letter": letters[:N_TRAIN]}).to_csv(public / "train.csv", index=False)
    onehot = (letters[N_TRAIN:, None] == np.asarray(CLASSES)[None, :]).astype(int)
    pd.DataFrame({"id": test_ids, **{c: onehot[:, j] for j, c in enumerate(CLASSES)}}).to_csv(
        private / "answers.csv", index=False)
    pd.DataFrame({"id": test_ids, **{c: 1 / len(CLASSES) for c in CLASSES}}).to_csv(
        public / "sample_submission.csv", index=False)
    board = _leaderboard(pixels[:N_TRAIN], letters[:N_TRAIN], pixels[N_TRAIN:], onehot)
    board.to_csv(out / "leaderboard.csv", index=False)
    write_config(out, TASK_ID, METRIC)
    (out / "description.md").write_text(
        f"# {TASK_ID}\n\nWhich letter does each small image show? {len(CLASSES)} capital letters "
        f"({', '.join(CLASSES)}), rendered in {len(FONTS)} fonts (sans, serif and monospaced; regular, bold and "
        f"italic), randomly rotated (up to 15 degrees), scaled, shifted, with random contrast and noise.\n\n"
        f"- `train/<id>.png`: {N_TRAIN} grey images, {SIZE}x{SIZE} pixels; `train.csv` gives each one's letter "
        f"(columns `id`, `letter`; the file is `train/<id>.png`).\n"
        f"- `test/<id>.png`: {N_TEST} images whose letters you predict.\n"
        f"- Submit `submission.csv` with the columns of `sample_submission.csv`: `id` and one column per letter "
        f"holding the probability that the image shows it; each row sums to 1.\n\n"
        f"Metric: multi-class log loss (lower is better).\n\n"
        f"Data: rendered by `python -m benchmarks.mlebench.tasks.build_images` (seed {SEED}) from the fonts that "
        f"matplotlib ships.\n")
    (out / "LEADERBOARD.md").write_text(
        f"# How leaderboard.csv of {TASK_ID} was made\n\n`python -m benchmarks.mlebench.tasks.build_images` "
        f"(Pillow {PIL.__version__}, matplotlib {matplotlib.__version__}, scikit-learn {sklearn.__version__}): "
        f"{len(board)} 'teams', each a scikit-learn model on the {SIZE * SIZE} raw pixels "
        f"({', '.join(MODELS)}) trained on the first 25 %, 50 % or 100 % of the training images and scored "
        f"({METRIC}) on the private answers. Best first.\n\n"
        f"Best {board.score.iloc[0]}, median {board.score.median()}, worst {board.score.iloc[-1]}.\n")
    print(f"{TASK_ID}: {N_TRAIN} train, {N_TEST} test images, leaderboard of {len(board)} "
          f"(best {board.score.iloc[0]}, median {board.score.median()})")


if __name__ == "__main__":
    build()
