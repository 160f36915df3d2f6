"""Domain-adaptive masked-language modelling: what it reads, what it changes, and how fine-tuning starts from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from data.errors import ConfigError
from data.labeled_units import load_labeled
from data.labels import load_labels
from data.load import load_report
from models.classifier import build_classifier, load_tokenizer
from models.classifier_config import load_classifier_config
from training.domain_adaptation import adapt_encoder, training_report_texts
from training.train import fit_classifier

ROOT = Path(__file__).resolve().parents[1]
FAST = ["train.epochs=1", "train.min_steps=0", "train.batch_size=16", "model.max_length=64", "adapt.batch_size=8"]


@pytest.fixture(scope="module")
def seed_records() -> list[dict]:
    """Units of two short seed reports (000 and 003); a third seed report's file lies beside them, unlabelled here."""
    return [r for r in load_labeled(ROOT / "data/labeled/seeds.jsonl") if r["report_id"][:3] in ("000", "003")]


def adapt_config(tiny_base: Path, report_dirs: Path, *extra: str):
    return load_classifier_config(overrides=[f"model.base={tiny_base}", f"adapt.report_dirs=[{report_dirs}]",
                                             *FAST, *extra])


def test_adaptation_reads_every_unit_of_the_training_reports_and_no_other(seed_records, reading_config, tmp_path):
    """A provincial report is labelled in passages: adaptation also reads the units between them."""
    ningxia = [r for r in load_labeled(ROOT / "data/labeled/provincial.jsonl")
               if r["report_id"] == "ningxia_2026_zfgzbg"]
    dirs = [str(ROOT / "seeds"), str(ROOT / "data/corpus/provincial-2026")]
    texts = training_report_texts(seed_records + ningxia, dirs)
    files = {"000_dd476d6a277efa8f": ROOT / "seeds", "003_1e2a77e6e55b6189": ROOT / "seeds",
             "ningxia_2026_zfgzbg": ROOT / "data/corpus/provincial-2026"}
    expected = [u.text for rid, folder in sorted(files.items())
                for u in load_report(folder / f"{rid}.txt", reading_config).units if u.kind != "furniture"]
    assert texts == expected
    assert {r["text"] for r in seed_records + ningxia if r["kind"] != "furniture"} <= set(texts)
    assert len(texts) > 1.5 * len(seed_records + ningxia)  # the unlabelled units too
    unseen = load_report(ROOT / "seeds" / "002_55dd0278fb5a4955.txt", reading_config)
    assert not set(texts) & {u.text for u in unseen.units if u.kind == "body"}
    with pytest.raises(ConfigError, match="'000_dd476d6a277efa8f' is in none of adapt.report_dirs"):
        training_report_texts(seed_records, [str(tmp_path)])


def test_the_head_learns_alone_first_then_the_encoder_but_never_the_word_embeddings(tiny_base, seed_records,
                                                                                     tmp_path, caplog):
    texts = training_report_texts(seed_records, [str(ROOT / "seeds")])
    start = load_file(tiny_base / "model.safetensors")
    tokenizer = load_tokenizer(str(tiny_base))

    def adapt(*steps: str, base: Path = tiny_base, out: str) -> str:
        return adapt_encoder(str(base), tokenizer, texts, adapt_config(tiny_base, ROOT / "seeds", *steps),
                             tmp_path / out, False)

    head_only = adapt("adapt.steps=0", "adapt.head_steps=4", out="a")
    assert all((load_file(Path(head_only) / "model.safetensors")[k] == v).all() for k, v in start.items())
    adapted = adapt("adapt.steps=4", "adapt.head_steps=2", out="b")
    assert not caplog.records  # the new language-model head goes unreported
    weights = load_file(Path(adapted) / "model.safetensors")
    assert set(weights) == set(start)  # the encoder alone, as the base was: no language-model head
    changed = {k for k, v in start.items() if not (weights[k] == v).all()}
    assert any("layer.1." in k for k in changed) and any("layer.0." in k for k in changed)
    assert not any("word_embeddings" in k for k in changed)
    damaged = tmp_path / "damaged"  # a base without one encoder weight is named, as build_classifier names it
    shutil.copytree(tiny_base, damaged)
    name = next(key for key in start if key.endswith("layer.0.output.dense.weight"))
    save_file({k: v for k, v in start.items() if k != name}, damaged / "model.safetensors", metadata={"format": "pt"})
    adapt("adapt.steps=0", "adapt.head_steps=0", base=damaged, out="c")
    assert [record.levelname for record in caplog.records] == ["WARNING"] and "layer.0.output.dense" in caplog.text
    caplog.clear()
    build_classifier(adapted, "pooler", load_labels().id2label, 0.1)
    assert not caplog.records  # a base like any other: nothing missing, nothing unknown


def test_fine_tuning_starts_from_the_adapted_encoder(tiny_base, seed_records, tmp_path):
    labels = load_labels()
    reports = tmp_path / "reports"
    reports.mkdir()
    for rid in {r["report_id"] for r in seed_records}:
        shutil.copy(ROOT / "seeds" / f"{rid}.txt", reports)
    plain = fit_classifier(seed_records, adapt_config(tiny_base, reports), labels, tmp_path / "plain", False)
    adapted = fit_classifier(seed_records, adapt_config(tiny_base, reports, "adapt.steps=4", "adapt.head_steps=2"),
                             labels, tmp_path / "adapted", False)
    assert (tmp_path / "adapted" / "adapt" / "adapted" / "model.safetensors").is_file()
    assert not (tmp_path / "plain" / "adapt").exists()
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not (plain.model.state_dict()[name] == adapted.model.state_dict()[name]).all()
    with pytest.raises(ConfigError, match="'000_dd476d6a277efa8f' is in none of adapt.report_dirs"):
        fit_classifier(seed_records, adapt_config(tiny_base, tmp_path / "nowhere", "adapt.steps=1"), labels,
                       tmp_path / "missing", False)


@pytest.mark.parametrize(("override", "key"), [("adapt.steps=-1", "adapt.steps"),
                                                ("adapt.head_steps=-5", "adapt.head_steps"),
                                                ("adapt.mask_probability=0", "adapt.mask_probability"),
                                                ("adapt.batch_size=0", "adapt.batch_size")])
def test_bad_adaptation_settings_name_their_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_classifier_config(overrides=[override])
