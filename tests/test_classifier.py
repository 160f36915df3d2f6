"""Classifier: a tiny random BERT trains, saves, loads and classifies end to end; calibration; baselines; errors."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from data.errors import ConfigError, ModelError
from data.labeled_units import load_labeled, load_labeled_files, model_picked
from data.labels import load_labels
from models.classifier_config import load_classifier_config
from models.document_context import neighbour_texts
from models.predictor import Predictor
from models.stage_profile import stage_profile
from models.text_member import combine, member_probabilities, save_member
from serve.cli import app
from training.baselines import embedding_logreg, fit_text_member, fit_tfidf_logreg, keyword_rules, tfidf_logreg
from training.calibration import calibrate_temperature, nll
from training.crossval import cross_validate, evaluation_splits, report_folds, results_markdown
from training.model_folder import train_and_save

ROOT = Path(__file__).resolve().parents[1]
FAST = ["train.epochs=2", "train.min_steps=0", "train.batch_size=16", "model.max_length=64", "train.patience=5"]


@pytest.fixture(scope="module")
def small_records() -> list[dict]:
    """Units of the three short seed reports: enough for every label, small enough to train in seconds."""
    records = load_labeled(ROOT / "data/labeled/seeds.jsonl")
    return [r for r in records if r["report_id"][:3] in ("000", "001", "003")]


def tiny_config(tiny_base: Path, *extra: str):
    """Fast tiny settings plus what a test trains differently (head, context, folds, probe); a test that needs just
    a trained model takes the session's ``tiny_model`` (conftest.py) instead of training one."""
    return load_classifier_config(overrides=[f"model.base={tiny_base}", *FAST, *extra])


def test_model_folder_describes_itself(tiny_model):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training_config.yaml", "calibration.json",
                 "metrics.json", "confusion_matrix.png", "manifest.json", "README.md"):
        assert (tiny_model / name).is_file(), name
    config = json.loads((tiny_model / "config.json").read_text())
    assert config["id2label"] == {str(i): name for i, name in enumerate(load_labels().names)}
    manifest = json.loads((tiny_model / "manifest.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["data_sha256"]) and manifest["packages"]["torch"]
    card = (tiny_model / "README.md").read_text()
    assert re.search(r"pipeline_tag: text-classification", card)
    assert all(name in card for name in load_labels().names)
    assert re.search(r"macro-F1 \d\.\d{3}", card) and "$" not in card.split("---", 2)[2]


def test_pipeline_loads_the_folder_unchanged(tiny_model):
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(tiny_model))
    result = classify("query: 新增国家高新技术企业1200家。")[0]
    assert result["label"] in load_labels().names and 0 <= result["score"] <= 1


def test_predictor_classifies_a_seed_report(tiny_model):
    predictor = Predictor.load(tiny_model)
    classified = predictor.classify(ROOT / "seeds/003_1e2a77e6e55b6189.txt")
    rows = classified.rows()
    assert len(rows) == 78 and classified.embeddings.shape == (78, 32)
    assert np.allclose(classified.probs.sum(axis=1), 1.0, atol=1e-5)
    assert all(r["label"] in load_labels().names and r["label"] != r["second_label"] for r in rows)
    assert all(r["uncertain"] == (r["probability"] < predictor.config.predict.min_confidence) for r in rows)
    profile = stage_profile(classified, evidence_per_stage=2)
    assert abs(sum(profile["overall"].values()) - 1) < 1e-9 and profile["sections"]
    text = predictor.classify("一、基础研究。加强国家实验室建设。")
    assert [u.kind for u in text.report.units] == ["heading", "body"]


def test_predictor_call_maps_a_plain_batch_with_document_context(tiny_model):
    predictor = Predictor.load(tiny_model)
    report = predictor.classify(ROOT / "seeds/003_1e2a77e6e55b6189.txt")
    units = report.report.units
    batch = {"report_id": np.array(["a"] * len(units)), "text": np.array([u.text for u in units]),
             "section_path": np.array([list(u.section_path) for u in units] + [[]], dtype=object)[:-1],
             "kind": np.array([u.kind for u in units])}
    out = predictor(batch)
    assert out["label"].shape == (len(units),) and set(out) >= {"text", "label", "probability", "uncertain"}
    # the batch API and classify() give the same labels: both apply document context over the whole report
    assert np.allclose(out["probability"], report.probs.max(axis=1), atol=1e-5)


def test_mean_head_heading_context_and_neighbours_member_train_and_load(tiny_base, small_records, tmp_path):
    config = tiny_config(tiny_base, "model.head=mean", "model.context=heading", "train.epochs=1", "train.min_steps=0",
                         "ensemble.member_neighbours=0.5")
    folder = train_and_save(config, load_labels(), small_records[:120], tmp_path / "mean", progress=False)
    predictor = Predictor.load(folder)
    # the text member was trained with its block of neighbours' text, and Predictor feeds it one
    assert [name for name, *_ in predictor.text_member.steps[0][1].transformers] == ["text", "neighbours"]
    classified = predictor.classify(ROOT / "seeds/001_2040a8d96ddfc16d.txt")
    assert len(classified.rows()) == 91


def test_cli_classify_jsonl_and_bad_files(tiny_model, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    result = CliRunner().invoke(app, ["classify", str(ROOT / "seeds/003_1e2a77e6e55b6189.txt"), str(empty),
                                      "--model", str(tiny_model), "--format", "jsonl", "--min-confidence", "0.9"])
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 78 and all(r["uncertain"] == (r["probability"] < 0.9) for r in rows)


def test_calibration_lowers_nll_on_an_overconfident_case():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=300)
    logits = rng.normal(size=(300, 3))
    logits[np.arange(300), labels] += 1.0
    logits *= 6.0  # right more often than not, but far too sure
    temperature = calibrate_temperature(logits, labels, max_iter=200)
    assert temperature > 1.5
    assert nll(logits, labels, temperature) < nll(logits, labels) - 0.2


def test_baselines_run():
    labels = load_labels()
    predicted = keyword_rules(["加强基础研究和国家实验室建设。", "引进院士和青年科技人才。", "你好。"], labels)
    assert [labels.names[i] for i in predicted] == ["科学发现", "人才支撑", "其他"]
    texts = ["建设国家实验室", "培育高新技术企业", "引进青年人才", "设立科技金融基金"] * 3
    y = np.array([0, 2, 3, 4] * 3)
    probabilities = tfidf_logreg(texts, y, texts, seed=0, num_labels=6)
    assert probabilities.shape == (12, 6) and (probabilities.argmax(1) == y).all()
    assert np.allclose(probabilities.sum(1), 1) and not probabilities[:, [1, 5]].any()  # labels absent from training
    vectors = np.eye(5)[y] + 0.01
    assert (embedding_logreg(vectors, y, vectors, seed=0, num_labels=6).argmax(1) == y).all()


def test_text_member_reads_a_units_neighbours_when_its_own_text_is_ambiguous():
    """The same sentence after a laboratory passage and after a talent passage takes its neighbours' stage."""
    labels = load_labels()
    science, talent = labels.label2id["科学发现"], labels.label2id["人才支撑"]
    ambiguous = "推动各项工作再上新台阶。"
    texts = ["建设国家实验室和重大科技基础设施。", ambiguous, "加强基础研究和前沿探索。",
             "引进院士和青年科技人才。", ambiguous, "完善人才评价和激励机制。"] * 3
    neighbours = neighbour_texts(texts, [i % 6 not in (0, 3) for i in range(len(texts))])
    y = np.array([science] * 3 + [talent] * 3 + [science] * 3 + [talent] * 3 + [science] * 3 + [talent] * 3)
    member = fit_text_member(texts, neighbours, y, 0.5, seed=0)
    probs = member_probabilities(member, [ambiguous] * 2, 6, [neighbours[0 + 1], neighbours[3 + 1]])
    assert probs.argmax(1).tolist() == [science, talent]
    with pytest.raises(ValueError, match="neighbours"):
        member_probabilities(member, [ambiguous], 6)
    # at weight 0 the member is the TF-IDF baseline over the unit's own text, whatever its neighbours say
    alone = fit_text_member(texts, neighbours, y, 0.0, seed=0)
    assert np.allclose(member_probabilities(alone, texts, 6, [""] * len(texts)),
                       tfidf_logreg(texts, y, texts, seed=0, num_labels=6))


def test_ensemble_is_the_renormalised_geometric_mean():
    sure = np.array([[0.9, 0.1], [0.5, 0.5]])
    unsure = np.array([[0.4, 0.6], [0.2, 0.8]])
    combined = combine([sure, unsure])
    expected = np.sqrt(sure * unsure)
    assert np.allclose(combined, expected / expected.sum(1, keepdims=True))
    assert combined.argmax(1).tolist() == [0, 1]


def _two_genres() -> list[dict]:
    seeds = load_labeled_files([ROOT / "data/labeled/seeds.jsonl"], picked_units=True)
    provincial = [{**r, "genre": "provincial"} for r in load_labeled(ROOT / "data/labeled/devset.jsonl")]
    return [r for r in seeds if r["report_id"][:3] in ("000", "001", "003")] + provincial


def test_folds_hold_out_every_report_once_and_mix_the_genres():
    records = _two_genres()
    folds = report_folds(records, 3)
    held = [report for fold in folds for report in fold]
    assert sorted(held) == sorted({r["report_id"] for r in records}) and len(held) == len(set(held))
    genre = {r["report_id"]: r["genre"] for r in records}
    assert all({genre[r] for r in fold} == {"seeds", "provincial"} for fold in folds)
    assert len(report_folds(records, 99)) == len(held)  # more folds than reports: leave-one-report-out


def test_units_a_model_picked_train_wherever_their_report_may_but_never_score():
    from training.train import split_dev

    sample = _two_genres()
    strategies = ("uncertainty", "margin", "diverse", "random", None)
    records = [{**r, "strategy": strategies[i % 5]} if i % 3 == 0 else r for i, r in enumerate(sample)]
    picked = [r for r in records if model_picked(r)]
    assert picked and not any(r.get("strategy") == "random" for r in picked)
    scored_ids = {r["unit_id"] for r in records if not model_picked(r)}
    folds = report_folds(records, 3)
    assert folds == report_folds([r for r in records if not model_picked(r)], 3)  # labelling more moves no fold
    splits = evaluation_splits(records, folds, devset=sample[:40])
    assert [name for name, _, _ in splits] == ["fold 1", "fold 2", "fold 3", "provincial → seeds",
                                               "seeds → provincial", "devset"]
    may_train = {f"fold {n}": lambda r, held=set(held): r["report_id"] not in held
                 for n, held in enumerate(folds, start=1)}
    may_train |= {"provincial → seeds": lambda r: r["genre"] == "provincial",
                  "seeds → provincial": lambda r: r["genre"] == "seeds", "devset": lambda r: True}
    for name, train, test in splits:
        assert not any(map(model_picked, test)) and {r["unit_id"] for r in test} <= scored_ids | {
            r["unit_id"] for r in sample[:40]}
        assert [r for r in train if model_picked(r)] == [r for r in picked if may_train[name](r)]
    provincial = [ROOT / "data/labeled/provincial.jsonl"]
    every, sampled = (load_labeled_files(provincial, picked_units=keep) for keep in (True, False))
    assert not any(map(model_picked, sampled)) and len(every) - len(sampled) == sum(map(model_picked, every)) > 0
    for by in ("units", "reports"):
        train, dev = split_dev(records, 0.15, 13, by)
        assert all(r in train for r in picked) and not any(model_picked(r) for r in dev)
        assert dev == split_dev([r for r in records if not model_picked(r)], 0.15, 13, by)[1]  # the same dev units


def test_a_dev_split_by_reports_holds_out_whole_reports_of_both_genres(tiny_base, small_records, tmp_path):
    """data.dev_split=reports: no report lies on both sides, the share is near dev_fraction, a seed fixes it, and the
    dev reports carry every label; the default splits units instead, from every report. A model trained so says it."""
    from training.model_folder import render_model_card
    from training.train import fit_classifier, split_dev

    records = load_labeled_files([ROOT / "data/labeled/seeds.jsonl", ROOT / "data/labeled/provincial.jsonl"],
                                 picked_units=False)
    train, dev = split_dev(records, 0.15, 13, "reports")
    reports = {r["report_id"] for r in dev}
    assert reports and not reports & {r["report_id"] for r in train} and len(train) + len(dev) == len(records)
    assert 0.05 < len(dev) / len(records) < 0.3
    assert {r["label"] for r in dev} == {r["label"] for r in records}
    assert split_dev(records, 0.15, 13, "reports") == (train, dev)
    assert {r["report_id"] for r in split_dev(records, 0.15, 7, "reports")[1]} != reports
    _, units = split_dev(records, 0.15, 13, "units")
    assert {r["report_id"] for r in units} == {r["report_id"] for r in records}
    with pytest.raises(ConfigError, match="data.dev_split"):
        split_dev([r for r in records if r["report_id"] == dev[0]["report_id"]], 0.15, 13, "reports")
    with pytest.raises(ConfigError, match="data.dev_split"):
        load_classifier_config(overrides=["data.dev_split=sentences"])
    # three small reports of one genre: one of them is the dev, whole
    config = tiny_config(tiny_base, "data.dev_split=reports")
    fitted = fit_classifier(small_records, config, load_labels(), tmp_path, progress=False)
    sizes = Counter(r["report_id"] for r in small_records)
    assert fitted.dev_size in sizes.values() and fitted.train_size == len(small_records) - fitted.dev_size
    card = render_model_card(fitted, config, load_labels(), small_records, {}, {}, "tiny")
    assert "## Metrics (held-out dev reports)" in card and "whole reports that the model did not train on" in card


def test_grouped_and_cross_genre_evaluation_run_every_method_on_the_same_units(tiny_base):
    records = _two_genres()
    config = tiny_config(tiny_base, "evaluate.folds=2", "train.linear_probe=false")
    results, held_out = cross_validate(records, config, load_labels(), progress=False, devset=records[:40])
    assert set(results["grouped"]) == {"seeds", "provincial"}
    for genre, by_method in results["grouped"].items():
        units = {m: sum(row["units"] for row in v["reports"]) for m, v in by_method.items()}
        assert set(units.values()) == {sum(r["genre"] == genre for r in records)}
        assert "fine-tuned + tf-idf" in by_method and "keyword rules" in by_method
    assert set(results["cross_genre"]) == {"seeds → provincial", "provincial → seeds"}
    assert results["devset"]["units"] == 40
    by_split = Counter(u["split"] for u in held_out)  # every held-out unit once per split, for analysis
    assert by_split == Counter({"fold 1": by_split["fold 1"], "fold 2": len(records) - by_split["fold 1"],
                                "seeds → provincial": sum(r["genre"] == "provincial" for r in records),
                                "provincial → seeds": sum(r["genre"] == "seeds" for r in records), "devset": 40})
    unit = held_out[0]
    assert len(unit["probabilities"]) == 7 and "keyword rules" not in unit["probabilities"]
    assert all(len(p) == 6 and abs(sum(p) - 1) < 1e-3 for p in unit["probabilities"].values())
    table = results_markdown(results, load_labels())
    assert "Cross-genre: train on `seeds`, test on `provincial`" in table and "genre `provincial`" in table


def test_evaluate_runs_only_the_splits_it_is_asked_for(tiny_base):
    records = _two_genres()
    config = tiny_config(tiny_base, "evaluate.folds=2", "train.linear_probe=false", "evaluate.splits=[folds]")
    results, held_out = cross_validate(records, config, load_labels(), progress=False, devset=records[:40])
    assert {u["split"] for u in held_out} == {"fold 1", "fold 2"} and len(held_out) == len(records)
    assert not results["cross_genre"] and "devset" not in results and set(results["grouped"]) == {"seeds",
                                                                                                  "provincial"}
    assert "Cross-genre" not in results_markdown(results, load_labels())
    with pytest.raises(ConfigError, match="evaluate.splits"):
        load_classifier_config(overrides=["evaluate.splits=[devset]"])


def test_bad_model_path_config_key_and_set_value_name_themselves(tmp_path):
    with pytest.raises(ModelError, match=str(tmp_path / "nothing")):
        Predictor.load(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="train.epoch'"):
        load_classifier_config(overrides=["train.epoch=3"])
    with pytest.raises(ConfigError, match="train.epochs"):
        load_classifier_config(overrides=["train.epochs=many"])
    with pytest.raises(ConfigError, match="model.head"):
        load_classifier_config(overrides=["model.head=cls"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_classifier_config(overrides=["epochs"])
    result = CliRunner().invoke(app, ["train", "--set", "train.lr=1"])
    assert result.exit_code != 0 and "train.lr" in str(result.exception)


def test_linear_probe_head_reproduces_the_regression_on_raw_features(tiny_base, small_records):
    """LP-FT's warm start on an identity pooler: the head, on unscaled features, predicts what the regression does."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from models.classifier import build_classifier, load_tokenizer
    from training.linear_probe import head_features, warm_start_head
    from training.train import model_inputs

    labels = load_labels()
    config = tiny_config(tiny_base)
    model = build_classifier(str(tiny_base), "pooler", labels.id2label, 0.1)
    pooler = model.base_model.pooler.dense  # the tiny base, like e5, ships no pooler: identity, not random
    assert torch.equal(pooler.weight, torch.eye(pooler.in_features)) and not pooler.bias.any()
    tokenizer = load_tokenizer(str(tiny_base))
    records = [r for r in small_records if r["label"] != "人才支撑"]  # one class absent from training
    y = np.array([labels.label2id[r["label"]] for r in records])
    model.train()
    features = head_features(model, tokenizer, model_inputs(records, tokenizer, config), 64)
    assert features.shape == (len(records), model.classifier.in_features) and model.training
    chosen = warm_start_head(model, features, y, cs=[0.01, 0.1, 1.0], balanced=True, seed=0)
    with torch.no_grad():
        head = model.classifier(torch.from_numpy(features)).numpy()
    scaler = StandardScaler().fit(features)
    assert chosen in (0.01, 0.1, 1.0)
    reference = LogisticRegression(C=chosen, max_iter=3000, class_weight="balanced", random_state=0)
    reference.fit(scaler.transform(features), y)
    assert (head.argmax(1) == reference.predict(scaler.transform(features))).mean() > 0.99
    assert head.argmax(1).tolist().count(labels.label2id["人才支撑"]) == 0


def test_a_folder_saved_before_a_config_key_existed_still_loads(tiny_model, tmp_path):
    import shutil

    import yaml

    old = tmp_path / "old"
    shutil.copytree(tiny_model, old)
    saved = yaml.safe_load((old / "training_config.yaml").read_text())
    del saved["train"]["linear_probe"], saved["train"]["min_steps"]
    (old / "training_config.yaml").write_text(yaml.safe_dump(saved, allow_unicode=True))
    # and its text member read the unit's own text alone
    seeds = load_labeled(ROOT / "data/labeled/seeds.jsonl")
    y = np.array([load_labels().label2id[r["label"]] for r in seeds])
    save_member(fit_tfidf_logreg([r["text"] for r in seeds], y, seed=0), old)
    predictor = Predictor.load(old)
    assert predictor.config.train.linear_probe is load_classifier_config().train.linear_probe
    assert len(predictor.classify(next((ROOT / "seeds").glob("000_*.txt"))).report.units) == 91


def test_wise_ft_mixes_the_fine_tuned_weights_with_their_start(tiny_base, small_records, tmp_path):
    """train.wise_ft=0 keeps the pretrained encoder; 0.5 lands halfway between it and the fine-tuned weights."""
    import torch

    from models.classifier import build_classifier
    from training.train import fit_classifier

    labels = load_labels()
    fitted = {share: fit_classifier(small_records, tiny_config(tiny_base, f"train.wise_ft={share}"), labels,
                                    tmp_path / str(share), progress=False).model.state_dict()
              for share in (0.0, 0.5, 1.0)}
    pretrained = build_classifier(str(tiny_base), "pooler", labels.id2label, 0.1).state_dict()
    layer = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(fitted[0.0][layer], pretrained[layer])
    assert not torch.allclose(fitted[1.0][layer], pretrained[layer])
    for name in (layer, "classifier.weight"):
        assert torch.allclose(fitted[0.5][name], (fitted[0.0][name] + fitted[1.0][name]) / 2, atol=1e-6)
    with pytest.raises(ConfigError, match="train.wise_ft"):
        tiny_config(tiny_base, "train.wise_ft=1.5")


def test_weight_averaging_keeps_the_mean_of_the_trainable_weights_from_its_start():
    """train.average_from: the mean of the weights after each step from that share of training on, frozen weights
    untouched; nothing is loaded when training ended before averaging began."""
    from types import SimpleNamespace

    from training.train import _AverageWeights

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    model[0].requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    averaging = _AverageWeights(model, 0.5)
    for step in range(1, 5):
        with torch.no_grad():
            model[1].weight.fill_(float(step))
        averaging.on_step_end(None, SimpleNamespace(global_step=step, max_steps=4), None)
    assert averaging.restore()
    assert torch.equal(model[1].weight, torch.full((2, 2), (2 + 3 + 4) / 3))  # steps 2-4: from half of 4 steps on
    assert torch.equal(model[0].weight, frozen)
    assert not _AverageWeights(model, 0.5).restore()


def test_fit_averages_weights_and_refits_the_member_on_every_unit(tiny_base, small_records, tmp_path):
    """The averaged run serves other weights than the best epoch's; with ensemble.member_refit the member is the
    TF-IDF + LR of every training unit, dev units included, and without it of the units less the dev split."""
    from training.train import fit_classifier, record_neighbours, split_dev

    labels = load_labels()
    fitted = {(share, refit): fit_classifier(small_records, tiny_config(tiny_base, f"train.average_from={share}",
                                                                      f"ensemble.member_refit={refit}"),
                                             labels, tmp_path / f"{share}-{refit}", progress=False)
              for share, refit in ((1.0, False), (0.5, True))}
    layer = "bert.encoder.layer.1.output.dense.weight"
    assert not torch.allclose(fitted[1.0, False].model.state_dict()[layer], fitted[0.5, True].model.state_dict()[layer])
    texts, neighbours = [r["text"] for r in small_records], record_neighbours(small_records)
    by_unit = dict(zip((r["unit_id"] for r in small_records), neighbours, strict=True))
    config = load_classifier_config()
    train, _ = split_dev(small_records, config.data.dev_fraction, config.train.seed, config.data.dev_split)
    for key, part in zip(fitted, (train, small_records), strict=True):
        expected = fit_text_member([r["text"] for r in part], [by_unit[r["unit_id"]] for r in part],
                                   np.array([labels.label2id[r["label"]] for r in part]), 0.0, config.train.seed)
        assert np.allclose(member_probabilities(fitted[key].text_member, texts, 6, neighbours),
                           member_probabilities(expected, texts, 6, neighbours))
    # and the model card says which weights and which member it serves
    from training.model_folder import render_model_card

    cards = {key: render_model_card(fitted[key], tiny_config(tiny_base, f"train.average_from={key[0]}",
                                                             f"ensemble.member_refit={key[1]}"),
                                    labels, small_records, {}, {}, "tiny")
             for key in fitted}
    assert "from 0.5 of training on" in cards[0.5, True] and "refit on every unit" in cards[0.5, True]
    assert "the best epoch's" in cards[1.0, False] and "refit" not in cards[1.0, False]
    with pytest.raises(ConfigError, match="train.average_from"):
        tiny_config(tiny_base, "train.average_from=1.5")


def test_building_a_classifier_reports_missing_encoder_weights_but_not_the_new_head(tiny_base, tmp_path, caplog):
    """The head (and e5's absent pooler) start new by design and go unreported; a base folder that lacks a weight of
    the encoder itself is named in a warning, for both heads."""
    import shutil

    from safetensors.torch import load_file, save_file

    from models.classifier import build_classifier

    labels = load_labels()
    for head in ("pooler", "mean"):
        build_classifier(str(tiny_base), head, labels.id2label, 0.1)
    assert not caplog.records
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_base, damaged)
    weights = load_file(damaged / "model.safetensors")
    name = next(key for key in weights if key.endswith("layer.0.output.dense.weight"))
    save_file({key: value for key, value in weights.items() if key != name}, damaged / "model.safetensors",
              metadata={"format": "pt"})
    for head in ("pooler", "mean"):
        caplog.clear()
        build_classifier(str(damaged), head, labels.id2label, 0.1)
        assert [record.levelname for record in caplog.records] == ["WARNING"]
        assert "layer.0.output.dense.weight" in caplog.text and str(damaged) in caplog.text


def test_frozen_layers_stay_pretrained_and_the_layers_above_train(tiny_base, small_records, tmp_path):
    """model.frozen_layers=1 keeps the embeddings block and layer 0 of the tiny encoder as pretrained; layer 1 and
    the head still learn."""
    import torch

    from models.classifier import build_classifier
    from training.train import fit_classifier

    labels = load_labels()
    config = tiny_config(tiny_base, "model.frozen_layers=1", "train.linear_probe=false")
    trained = fit_classifier(small_records, config, labels, tmp_path / "frozen", progress=False).model.state_dict()
    pretrained = build_classifier(str(tiny_base), "pooler", labels.id2label, 0.1).state_dict()
    for name in ("bert.embeddings.LayerNorm.weight", "bert.embeddings.position_embeddings.weight",
                 "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.0.output.dense.weight"):
        assert torch.equal(trained[name], pretrained[name]), name
    assert not torch.allclose(trained["bert.encoder.layer.1.attention.self.query.weight"],
                              pretrained["bert.encoder.layer.1.attention.self.query.weight"])
    with pytest.raises(ConfigError, match="model.frozen_layers"):
        tiny_config(tiny_base, "model.frozen_layers=-1")


def test_layer_decay_gives_each_layer_a_lower_rate_than_the_one_above(tiny_base, small_records, tmp_path):
    """train.layer_decay=0.5 on the 2-layer tiny encoder: head 1e-4, layer 1 5e-5, layer 0 2.5e-5, embeddings
    1.25e-5; the model still trains, and a decay outside (0, 1] is refused."""
    from transformers import TrainingArguments

    from models.classifier import build_classifier
    from training.train import _WeightedTrainer, fit_classifier

    labels = load_labels()
    model = build_classifier(str(tiny_base), "pooler", labels.id2label, 0.1)
    args = TrainingArguments(output_dir=str(tmp_path / "optimizer"), learning_rate=1e-4, weight_decay=0.01,
                             use_cpu=True, report_to=[])
    trainer = _WeightedTrainer(model=model, args=args, class_weights=None, layer_decay=0.5, rdrop=0)
    groups = trainer.create_optimizer().param_groups
    rate = {id(p): group["lr"] for group in groups for p in group["params"]}
    named = dict(model.named_parameters())
    assert rate[id(named["classifier.weight"])] == pytest.approx(1e-4)
    assert rate[id(named["bert.encoder.layer.1.output.dense.weight"])] == pytest.approx(5e-5)
    assert rate[id(named["bert.encoder.layer.0.attention.self.query.weight"])] == pytest.approx(2.5e-5)
    assert rate[id(named["bert.embeddings.word_embeddings.weight"])] == pytest.approx(1.25e-5)
    assert all(group["weight_decay"] == 0 for group in groups
               if any(p is named["bert.encoder.layer.0.output.LayerNorm.weight"] for p in group["params"]))
    fitted = fit_classifier(small_records, tiny_config(tiny_base, "train.layer_decay=0.5"), labels, tmp_path,
                            progress=False)
    assert fitted.epochs_run > 0
    with pytest.raises(ConfigError, match="train.layer_decay"):
        tiny_config(tiny_base, "train.layer_decay=0")


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_bf16_precision_runs_training_steps_in_bf16_and_keeps_fp32_weights(tiny_base, small_records, tmp_path,
                                                                           monkeypatch, precision):
    """train.precision=bf16 computes the training steps' matrix products in bf16 (autocast); fp32 never does. The
    weights that calibration, the folder and the export see stay fp32 either way."""
    import training.train as train_module
    from models.classifier import build_classifier

    seen: set[torch.dtype] = set()

    def watched_classifier(*args, **kwargs) -> torch.nn.Module:
        model = build_classifier(*args, **kwargs)
        query = model.base_model.encoder.layer[0].attention.self.query
        query.register_forward_hook(lambda module, _, output: seen.add(output.dtype) if module.training else None)
        return model

    monkeypatch.setattr(train_module, "build_classifier", watched_classifier)
    config = tiny_config(tiny_base, f"train.precision={precision}")
    fitted = train_module.fit_classifier(small_records, config, load_labels(), tmp_path, progress=False)
    assert seen == ({torch.bfloat16} if precision == "bf16" else {torch.float32})
    assert {tensor.dtype for tensor in fitted.model.state_dict().values() if tensor.is_floating_point()} == {
        torch.float32}
    assert np.isfinite(fitted.dev_logits).all() and fitted.dev_logits.dtype == np.float32
    with pytest.raises(ConfigError, match="train.precision"):
        tiny_config(tiny_base, "train.precision=fp16")


def test_rdrop_adds_the_divergence_between_two_dropout_passes(tiny_base, small_records, tmp_path):
    """Without dropout both passes agree and R-Drop's loss is the plain cross-entropy; with dropout the divergence
    term is positive and grows linearly with train.rdrop. A model trains with it."""
    from transformers import TrainingArguments

    from models.classifier import build_classifier, load_tokenizer
    from training.train import _WeightedTrainer, fit_classifier

    labels = load_labels()
    args = TrainingArguments(output_dir=str(tmp_path / "loss"), use_cpu=True, report_to=[])
    batch = dict(load_tokenizer(str(tiny_base))(["加强基础研究", "引进高层次人才团队"], padding=True,
                                                return_tensors="pt"))

    def loss(dropout: float, rdrop: float) -> float:
        torch.manual_seed(0)
        model = build_classifier(str(tiny_base), "pooler", labels.id2label, dropout).train()
        trainer = _WeightedTrainer(model=model, args=args, class_weights=None, layer_decay=1.0, rdrop=rdrop)
        torch.manual_seed(1)
        return trainer.compute_loss(model, {**batch, "labels": torch.tensor([0, 3])}).item()

    assert loss(0.0, 1.0) == pytest.approx(loss(0.0, 0.0), rel=1e-5)
    one, two, three = loss(0.3, 1.0), loss(0.3, 2.0), loss(0.3, 3.0)
    assert two > one and three - two == pytest.approx(two - one, rel=1e-3)
    fitted = fit_classifier(small_records, tiny_config(tiny_base, "train.rdrop=1"), labels, tmp_path, progress=False)
    assert fitted.epochs_run > 0
    with pytest.raises(ConfigError, match="train.rdrop"):
        tiny_config(tiny_base, "train.rdrop=-1")


def test_majority_share_draws_a_fresh_share_of_the_most_frequent_label_each_epoch(tiny_base, small_records, tmp_path):
    """train.majority_share=0.4 on the seed labels: every epoch holds each unit of the other labels once and 40 % of
    the majority label's, drawn anew, in length-grouped batches; the majority's loss weight rises by 1 / 0.4."""
    from training.sampling import MajorityShareSampler
    from training.train import _WeightedTrainer, class_weights, fit_classifier

    records = load_labeled(ROOT / "data/labeled/seeds.jsonl")
    labels = load_labels()
    ids = [labels.label2id[r["label"]] for r in records]
    lengths = [len(r["text"]) for r in records]
    majority = labels.label2id["产业发展"]  # 363 of the 1,166 seed units
    sampler = MajorityShareSampler(ids, lengths, 0.4, 16, True, 13)
    epochs = [list(sampler), list(sampler)]
    for epoch in epochs:
        assert len(epoch) == len(sampler) == 1166 - 363 + round(0.4 * 363) and len(set(epoch)) == len(epoch)
        assert sorted(i for i in epoch if ids[i] != majority) == [i for i in range(1166) if ids[i] != majority]
        spread = np.mean([np.ptp([lengths[i] for i in epoch[k:k + 16]]) for k in range(0, len(epoch), 16)])
        assert spread < 0.5 * np.ptp(lengths)
    first, second = ({i for i in epoch if ids[i] == majority} for epoch in epochs)
    assert first != second
    weights = class_weights(ids, len(labels.names))
    adjusted = sampler.loss_weights(weights, len(labels.names))
    assert adjusted[majority] == pytest.approx(weights[majority] / 0.4)
    others = [i for i in range(len(labels.names)) if i != majority]
    assert torch.equal(adjusted[others], weights[others])
    assert torch.equal(MajorityShareSampler(ids, lengths, 1.0, 16, True, 13).loss_weights(weights, len(labels.names)),
                       weights)
    # the Trainer batches from this sampler: an epoch is ceil(809 / 16) steps, not ceil(1166 / 16)
    from datasets import Dataset
    from transformers import TrainingArguments

    from models.classifier import build_classifier

    args = TrainingArguments(output_dir=str(tmp_path / "sampler"), per_device_train_batch_size=16, use_cpu=True,
                             report_to=[])
    dataset = Dataset.from_dict({"input_ids": [[0, 5, 2]] * len(ids), "labels": ids})
    trainer = _WeightedTrainer(model=build_classifier(str(tiny_base), "pooler", labels.id2label, 0.1), args=args,
                               train_dataset=dataset, class_weights=adjusted, layer_decay=1.0, rdrop=0,
                               train_sampler=sampler)
    assert len(trainer.get_train_dataloader()) == -(-len(sampler) // 16)
    fitted = fit_classifier(small_records, tiny_config(tiny_base, "train.majority_share=0.5"), labels, tmp_path,
                            progress=False)
    assert fitted.epochs_run > 0
    with pytest.raises(ConfigError, match="train.majority_share"):
        tiny_config(tiny_base, "train.majority_share=0")


def test_confidence_weights_weigh_each_units_loss_and_the_text_member(tiny_base, small_records, tmp_path):
    """A unit's label confidence sets its weight in the encoder's loss and in the text member's fit."""
    from types import SimpleNamespace

    from models.classifier import load_tokenizer
    from training.train import _UnitWeightCollator, _WeightedTrainer, fit_classifier, unit_weights

    default = load_classifier_config().train.confidence_weights
    assert unit_weights(small_records, default) is None  # the default weighs every unit alike: the plain fit
    weights = unit_weights(small_records, {**default, "medium": 0.25})
    assert sorted(set(weights.tolist())) == [0.25, 1.0]
    assert (weights == 0.25).sum() == sum(r["confidence"] == "medium" for r in small_records)
    with pytest.raises(ConfigError, match="train.confidence_weights"):
        unit_weights(small_records, {"high": 1.0})
    with pytest.raises(ConfigError, match="train.confidence_weights"):
        load_classifier_config(overrides=["train.confidence_weights.medium=-1"])

    # the loss: a unit of weight 0 counts for nothing, and weights of 1 give the class-weighted cross-entropy
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0]])
    labels = torch.tensor([0, 1, 0])
    trainer = SimpleNamespace(class_weights=torch.tensor([0.5, 2.0]))

    def loss(rows: list[int], unit_weight: list[float] | None) -> torch.Tensor:
        weight = torch.tensor(unit_weight) if unit_weight is not None else None
        return _WeightedTrainer._cross_entropy(trainer, logits[rows], labels[rows], weight)

    assert torch.allclose(loss([0, 1, 2], [1.0, 1.0, 1.0]), loss([0, 1, 2], None))
    assert torch.allclose(loss([0, 1, 2], [1.0, 1.0, 0.0]), loss([0, 1], None))
    # the collator carries the weights beside the padded batch and drops the length column the model does not take
    tokenizer = load_tokenizer(str(tiny_base))
    batch = _UnitWeightCollator(tokenizer)([{"input_ids": [0, 5, 2], "attention_mask": [1, 1, 1], "labels": 1,
                                             "length": 3, "unit_weight": 0.25},
                                            {"input_ids": [0, 2], "attention_mask": [1, 1], "labels": 0,
                                             "length": 2, "unit_weight": 1.0}])
    assert batch["unit_weight"].tolist() == [0.25, 1.0] and "length" not in batch
    assert batch["input_ids"].shape == (2, 3)

    # the member: one text labelled two ways, the confident label outweighs the other
    science, talent = load_labels().label2id["科学发现"], load_labels().label2id["人才支撑"]
    texts = ["建设国家实验室。", "引进青年科技人才。", "布局新型研发平台。"] * 4
    y = np.array([science, talent, science] * 2 + [science, talent, talent] * 2)
    for unsure, winner in (([1.0] * 6 + [1.0, 1.0, 0.1] * 2, science), ([1.0, 1.0, 0.1] * 2 + [1.0] * 6, talent)):
        member = fit_text_member(texts, [""] * len(texts), y, 0.0, seed=0, sample_weight=np.array(unsure))
        assert member_probabilities(member, ["布局新型研发平台。"], 6, [""]).argmax() == winner

    # and a fit with weights runs end to end, its member fit with the same weights
    config = tiny_config(tiny_base, "train.confidence_weights.medium=0.25", "train.confidence_weights.low=0.25")
    fitted = fit_classifier(small_records, config, load_labels(), tmp_path / "weighted", progress=False)
    from training.train import record_neighbours, split_dev

    train, _ = split_dev(small_records, config.data.dev_fraction, config.train.seed, config.data.dev_split)
    texts, neighbours = [r["text"] for r in small_records], record_neighbours(small_records)
    expected = fit_text_member([r["text"] for r in train], [""] * len(train),
                               np.array([load_labels().label2id[r["label"]] for r in train]), 0.0, config.train.seed,
                               unit_weights(train, config.train.confidence_weights))
    assert np.allclose(member_probabilities(fitted.text_member, texts, 6, neighbours),
                       member_probabilities(expected, texts, 6, [""] * len(texts)))
    from training.model_folder import render_model_card

    card = render_model_card(fitted, config, load_labels(), small_records, {}, {}, "tiny")
    assert "label's confidence (`train.confidence_weights`): high 1, medium 0.25, low 0.25" in card
