"""The ``chainstage`` command line: thin Typer commands over the library functions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from data.errors import ChainstageError
from data.load import load_report
from data.reading_config import load_reading_config
from models.folder_layout import default_model_dir, is_model_folder
from serve.analyst_cli import print_profile, profile_command, report_command
from serve.error_lines import EachFile, print_error
from serve.export_cli import export_command
from serve.label_cli import label_app
from serve.options import BackendOption, FormatOption, ModelOption, ReportFilesArgument, SetOption
from serve.score_cli import score_command
from serve.summarize_cli import evaluate_summary_command, summarize_command
from serve.tables import write_rows

ConfigArgument = Annotated[Path | None, typer.Argument(help="Classifier config (default: configs/classifier.yaml)")]

app = typer.Typer(
    help="Classify and summarise Chinese S&T government reports along the innovation chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """Options shared by every command (``--debug`` is read in ``main``)."""


@app.command()
def segment(files: ReportFilesArgument, fmt: FormatOption = "table") -> None:
    """Cut reports into units (sentences and headings) with their section paths.

    Example: `chainstage segment seeds/001_2040a8d96ddfc16d.txt --format jsonl`
    """
    config = load_reading_config()
    reports = EachFile(files, lambda path: load_report(path, config))
    for path, report in reports:
        write_rows([report.unit_row(unit) for unit in report.units], ["unit_id", "kind", "section_path", "text"], fmt,
                   title=str(path))
    reports.finish()


@app.command()
def train(
    config: ConfigArgument = None,
    overrides: SetOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Model folder (default: output_dir)")] = None,
    default: Annotated[bool, typer.Option("--default", help="Train the default model that classify/summarize/score "
                                          "use when no --model is given; does nothing if it already exists")] = False,
) -> None:
    """Fine-tune the stage classifier on the labelled reports and write a model folder.

    Settings: configs/classifier.yaml, or the CONFIG given (`--set train.epochs=3`).

    Example: `chainstage train configs/classifier.yaml --set train.epochs=3 -o runs/try`
    """
    from data.labels import load_labels
    from models.classifier_config import load_classifier_config
    from training.model_folder import train_and_save

    cfg = load_classifier_config(config, overrides)
    folder = default_model_dir() if default else output or Path(cfg.output_dir)
    if default and is_model_folder(folder):
        Console().print(f"default model already trained: {folder}")
        return
    folder = train_and_save(cfg, load_labels(), cfg.data.records(), folder)
    Console().print(f"model folder: {folder}")
    if default:
        _export_default_model(folder)


def _export_default_model(folder: Path) -> None:
    """Give the default model its ONNX export, so that analysts and batch jobs get the fastest backend that passes."""
    import importlib.util

    from models.export_config import load_export_config
    from models.onnx_backend import export_onnx

    export = load_export_config()
    if not export.onnx.default_model:
        return
    if importlib.util.find_spec("onnxruntime") is None:
        Console().print("note: no ONNX export of the default model (pip install 'chainstage[onnx]' for the fast "
                        "backends)")
        return
    record = export_onnx(folder, export, int8=True)
    passed = [name for name, variant in record["variants"].items() if variant["passed"]]
    Console().print(f"ONNX export: {', '.join(passed) or 'no variant'} passed parity; default backend "
                    f"{record['default_backend']}")


@app.command()
def evaluate(
    config: ConfigArgument = None,
    overrides: SetOption = None,
    onnx: Annotated[bool, typer.Option("--onnx", help="Also export each fold's model to ONNX fp32 and int8 and score "
                                       "them on the held-out reports (needs the onnx extra)")] = False,
) -> None:
    """Held-out reports by genre, cross-genre and devset evaluation of the fine-tuned model and the baselines.

    Settings: configs/classifier.yaml, or the CONFIG given (`--set train.learning_rate=5e-5`).

    Example: `chainstage evaluate --set evaluate.output_dir=runs/evaluate-lr5e-5 --set train.learning_rate=5e-5`
    """
    import json

    from data.labeled_units import load_labeled
    from data.labels import load_labels
    from models.classifier_config import load_classifier_config
    from training.crossval import cross_validate, results_markdown

    cfg = load_classifier_config(config, overrides)
    labels = load_labels()
    devset = load_labeled(cfg.evaluate.devset) if cfg.evaluate.devset else None
    results, units = cross_validate(cfg.data.records(), cfg, labels, devset=devset, onnx=onnx)
    results["command"] = " ".join(["chainstage", *sys.argv[1:]])
    output = Path(cfg.evaluate.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    (output / "predictions.jsonl").write_text("".join(json.dumps(u, ensure_ascii=False) + "\n" for u in units),
                                             encoding="utf-8")
    table = results_markdown(results, labels)
    (output / "results.md").write_text(table, encoding="utf-8")
    print(table)


@app.command()
def classify(
    files: ReportFilesArgument,
    model: ModelOption = None,
    fmt: FormatOption = "table",
    min_confidence: Annotated[float | None, typer.Option(help="Flag units below this calibrated probability")] = None,
    profile: Annotated[bool, typer.Option(help="Print each report's stage profile after its units")] = True,
    backend: BackendOption = None,
) -> None:
    """Label every unit with its innovation-chain stage and calibrated probability.

    Example: `chainstage classify seeds/003_1e2a77e6e55b6189.txt --format csv > units.csv`
    """
    from models.predictor import Predictor
    from models.stage_profile import stage_profile

    predictor = Predictor.load(model, backend=backend)
    reports = EachFile(files, predictor.classify)
    for path, classified in reports:
        if min_confidence is not None:
            classified.min_confidence = min_confidence
        write_rows(classified.rows(), ["unit_id", "section_path", "label", "probability", "uncertain", "text"], fmt,
                   title=str(path))
        if profile and fmt == "table":
            print_profile(stage_profile(classified, predictor.config.predict.evidence_per_stage), path)
    reports.finish()


# commands that live in their own modules, after these four, in the order `chainstage --help` lists them
app.command("profile")(profile_command)
app.command("report")(report_command)
app.command("summarize")(summarize_command)
app.command("evaluate-summary")(evaluate_summary_command)
app.command("score")(score_command)
app.command("export")(export_command)
app.add_typer(label_app, name="label")


def main() -> None:
    """Console entry point: ChainstageErrors become one line on stderr and exit code 1."""
    try:
        app()
    except ChainstageError as err:
        if "--debug" in sys.argv:
            raise
        print_error(err)
        sys.exit(1)
