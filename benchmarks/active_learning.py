"""The labelling loop replayed on the provincial reports: does choosing units by uncertainty beat random choice?

Usage: .venv/bin/python benchmarks/active_learning.py [--set simulate.rounds=5 ...]

Start from the seed labels, hold out whole provincial reports (configs/label.yaml: simulate.held_out), and add
batches of units from the other provincial reports, chosen by each strategy of training/selection.py, with the
provincial labels as the reader's answers. After every batch the model is refit and scored by macro-F1 on the
held-out reports. Fine-tuning e5 per batch would take hours on a 2-core CPU, so the model here is the cheaper
proxy the project already measured: a linear probe on frozen mean-pooled e5 vectors (the LP step of LP-FT), with
the same vectors as the diversity space. Vectors are computed once and cached in a temp file.

Writes the table (simulate.table) and the learning curves (simulate.figure); prints the table. Asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from data.labeled_units import load_labeled, model_picked
from data.labels import load_labels
from models.base_encoder import ensure_base_encoder
from models.classifier_config import load_classifier_config
from models.embedding import SentenceEncoder
from training.label_config import LabelConfig, SelectionSettings, Strategy, load_label_config
from training.selection import select_units

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ".venv/bin/python benchmarks/active_learning.py"


def frozen_vectors(texts: list[str], base: str, prefix: str, max_length: int) -> np.ndarray:
    """Mean-pooled frozen e5 vectors, cached in the temp folder under a hash of the encoder and the texts."""
    digest = hashlib.sha256("\n".join([base, prefix, str(max_length), *texts]).encode("utf-8")).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"chainstage-frozen-e5-{digest}.npy"
    if cache.is_file():
        return np.load(cache)
    vectors = SentenceEncoder(base, prefix, max_length, batch_size=64).encode(texts, progress=True)
    np.save(cache, vectors)
    return vectors


def fit_probe(x: np.ndarray, y: np.ndarray, c: float) -> object:
    """The standardised, class-balanced logistic regression that LP-FT starts from."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, class_weight="balanced")).fit(x, y)


def learning_curve(strategy: Strategy, settings: SelectionSettings, x_seed: np.ndarray, y_seed: np.ndarray,
                   x_pool: np.ndarray, y_pool: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                   config: LabelConfig, num_labels: int) -> list[tuple[int, float]]:
    """(pool labels added, held-out macro-F1) after every round of one strategy."""
    picked: list[int] = []
    curve = []
    for round_ in range(config.simulate.rounds + 1):
        x = np.vstack([x_seed, x_pool[picked]])
        y = np.concatenate([y_seed, y_pool[picked]])
        probe = fit_probe(x, y, config.simulate.probe_c)
        f1 = f1_score(y_test, probe.predict(x_test), labels=range(num_labels), average="macro", zero_division=0)
        curve.append((len(picked), float(f1)))
        remaining = np.setdiff1d(np.arange(len(y_pool)), picked)
        if round_ == config.simulate.rounds or not len(remaining):
            break
        probs = probe.predict_proba(x_pool[remaining])
        # each round of random sampling draws afresh; the other strategies are deterministic given the model
        round_settings = dataclasses.replace(settings, seed=settings.seed * 1000 + round_)
        chosen = select_units(probs, x_pool[remaining], config.simulate.batch_size, strategy, round_settings)
        picked.extend(int(remaining[i]) for i in chosen)
    return curve


def labels_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    """The fewest pool labels after which the curve reaches ``target`` (None if it never does)."""
    return next((added for added, f1 in curve if f1 >= target - 1e-9), None)


def markdown(curves: dict[str, list[tuple[int, float]]], spread: list[float], config: LabelConfig, seed_units: int,
             pool: tuple[int, int], test_units: int, seconds: dict[str, float]) -> tuple[str, bool]:
    """The learning-curve table, the goal check and how it was produced; True if a strategy meets the goal."""
    names = list(curves)
    sim = config.simulate
    lines = [
        "# Active learning on the provincial reports (linear-probe proxy)", "",
        f"Command: `{COMMAND}` (settings: `configs/label.yaml`, section `simulate`).", "",
        f"Seed labels: {seed_units} units of `{sim.seed_file}`. Pool: {pool[0]} labelled units of the "
        f"{pool[1]} provincial reports not held out. Held out (scored after every batch): "
        f"{test_units} units of {', '.join(sim.held_out)}. Batches of {sim.batch_size}; the provincial labels "
        "answer for the reader. Model: standardised, class-balanced logistic regression "
        f"(C = {sim.probe_c}) on frozen mean-pooled multilingual-e5-small vectors, refit after every batch; "
        f"random sampling is the mean of seeds {sim.random_seeds} (± is their standard deviation).", "",
        "Held-out macro-F1 (six labels) against pool labels added:", "",
        "| pool labels | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
    ]
    for i, (added, _) in enumerate(curves["random"]):
        cells = [f"{curves[name][i][1]:.3f}" + (f" ± {spread[i]:.3f}" if name == "random" else "") for name in names]
        lines.append(f"| {added} | " + " | ".join(cells) + " |")
    final_added, final_f1 = curves["random"][-1]
    allowed = sim.goal_fraction * final_added
    lines += ["", f"Goal: reach random sampling's final macro-F1 ({final_f1:.3f} at {final_added} labels) with at "
              f"most {sim.goal_fraction:.0%} of its labels ({allowed:.0f}).", "",
              "| strategy | labels to reach it | share of random's | goal met | run time |", "|---|---|---|---|---|"]
    met_any = False
    for name in names:
        needed = labels_to_reach(curves[name], final_f1)
        met = needed is not None and needed <= allowed
        met_any |= met and name != "random"
        share = f"{needed / final_added:.0%}" if needed is not None else "never"
        lines.append(f"| {name} | {needed if needed is not None else 'never'} | {share} | {'yes' if met else 'no'} | "
                     f"{seconds[name]:.0f} s |")
    lines += ["", "Labels each strategy needs to match random sampling at smaller budgets:", "",
              "| random's labels | random's F1 | " + " | ".join(n for n in names if n != "random") + " |",
              "|---|---|" + "---|" * (len(names) - 1)]
    for added, f1 in curves["random"][1::2]:
        cells = []
        for name in names:
            if name != "random":
                needed = labels_to_reach(curves[name], f1)
                cells.append(f"{needed} ({needed / added:.0%})" if needed is not None else "never")
        lines.append(f"| {added} | {f1:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", met_any


def plot(curves: dict[str, list[tuple[int, float]]], spread: list[float], seed_units: int, goal_fraction: float,
         path: Path) -> None:
    """Macro-F1 against pool labels, one line per strategy, random with its seed spread shaded, and the goal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=150)
    for name, curve in curves.items():
        x, y = zip(*curve, strict=True)
        ax.plot(x, y, marker="o", markersize=3, label=name, linestyle="--" if name == "random" else "-")
        if name == "random":
            ax.fill_between(x, np.array(y) - spread, np.array(y) + spread, alpha=0.2, label="random ± sd (3 seeds)")
    final_added, final_f1 = curves["random"][-1]
    ax.axhline(final_f1, color="grey", linestyle=":", linewidth=1, label="random's final macro-F1")
    ax.axvline(goal_fraction * final_added, color="black", linestyle=":", linewidth=1,
               label=f"goal: {goal_fraction:.0%} of random's labels")
    ax.set_xlabel(f"provincial units labelled (on top of {seed_units} seed units)")
    ax.set_ylabel("macro-F1 on 4 held-out provincial reports")
    ax.set_title("Learning curves: linear probe on frozen e5 vectors")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="override configs/label.yaml")
    config = load_label_config(overrides=parser.parse_args().overrides)
    classifier = load_classifier_config()
    torch.set_num_threads(classifier.train.threads)
    labels = load_labels()
    sim = config.simulate
    # the oracle is the labelled sample of each report; units that a model once picked for review would make the
    # simulated pool lean to what that model found hard
    seeds = load_labeled(ROOT / sim.seed_file)
    provincial = [r for r in load_labeled(ROOT / sim.pool_file) if not model_picked(r)]
    reports = {r["report_id"] for r in provincial}
    if set(sim.held_out) - reports or "random" not in sim.strategies:
        raise SystemExit(f"configs/label.yaml: simulate.held_out must name reports of {sim.pool_file}, and "
                         "simulate.strategies must include random (the baseline)")
    records = seeds + provincial
    vectors = frozen_vectors([r["text"] for r in records], ensure_base_encoder(classifier.model.base),
                             classifier.model.prefix, classifier.model.max_length)
    y = np.array([labels.label2id[r["label"]] for r in records])
    is_seed = np.arange(len(records)) < len(seeds)
    held = np.array([r["report_id"] in sim.held_out for r in records]) & ~is_seed
    pool = ~is_seed & ~held
    data = (vectors[is_seed], y[is_seed], vectors[pool], y[pool], vectors[held], y[held])
    curves, seconds, random_runs = {}, {}, []
    for strategy in sim.strategies:
        started = time.perf_counter()
        seeds_to_run = sim.random_seeds if strategy == "random" else [config.selection.seed]
        runs = [learning_curve(strategy, dataclasses.replace(config.selection, seed=seed), *data, config,
                               len(labels.names)) for seed in seeds_to_run]
        seconds[strategy] = (time.perf_counter() - started) / len(runs)
        curves[strategy] = [(added, float(np.mean([run[i][1] for run in runs])))
                            for i, (added, _) in enumerate(runs[0])]
        if strategy == "random":
            random_runs = runs
        print(f"{strategy}: " + " ".join(f"{added}:{f1:.3f}" for added, f1 in curves[strategy]), flush=True)
    spread = [float(np.std([run[i][1] for run in random_runs])) for i in range(len(random_runs[0]))]
    table, met = markdown(curves, spread, config, int(is_seed.sum()),
                            (int(pool.sum()), len(reports) - len(sim.held_out)), int(held.sum()), seconds)
    (ROOT / sim.table).parent.mkdir(parents=True, exist_ok=True)
    (ROOT / sim.table).write_text(table, encoding="utf-8")
    plot(curves, spread, int(is_seed.sum()), sim.goal_fraction, ROOT / sim.figure)
    print(table)
    print(f"goal met: {'yes' if met else 'no'}; table {sim.table}, figure {sim.figure}")


if __name__ == "__main__":
    main()
