"""``chainstage label``: export the units most worth reviewing, import the reviewed labels, compare annotators."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from data.label_batches import BatchFormat
from serve.options import ModelOption, SetOption
from training.label_config import Strategy

label_app = typer.Typer(help="The labelling loop: pre-label and pick units to review, import the reviewed labels, "
                             "measure agreement. Then `chainstage train --set data.labeled=[...]`.",
                        no_args_is_help=True, rich_markup_mode="markdown")


@label_app.command("export")
def export_command(
    source: Annotated[Path, typer.Argument(help="A report file, or a folder of reports")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The batch file to write")],
    strategy: Annotated[Strategy | None, typer.Option(help="uncertainty, margin, diverse or random "
                                                           "(default: export.strategy)")] = None,
    n: Annotated[int | None, typer.Option("--n", help="Units in the batch (default: export.n)")] = None,
    fmt: Annotated[BatchFormat | None, typer.Option("--format", help="jsonl, csv or label-studio "
                                                                     "(default: export.format)")] = None,
    model: ModelOption = None,
    overrides: SetOption = None,
) -> None:
    """Pre-label reports and write the units that will teach the model most, most useful first.

    Units already in a labelled file (data.labeled of configs/classifier.yaml, and intake.into) are left out.
    Settings: configs/label.yaml (`--set selection.diversity_weight=0.3`).

    Example: `chainstage label export data/corpus/new-genre -o batch.json --format label-studio --n 200`
    """
    from data.label_batches import write_batch
    from data.label_intake import existing_labels
    from data.labels import load_labels
    from models.classifier_config import load_classifier_config
    from models.predictor import Predictor
    from training.label_config import load_label_config
    from training.review_batch import report_files, review_batch

    config = load_label_config(overrides=overrides)
    files = report_files(source)
    predictor = Predictor.load(model)
    labelled = existing_labels([*load_classifier_config().data.labeled_files, config.intake.into])
    strategy = strategy or config.export.strategy
    batch = review_batch(predictor, files, labelled, n or config.export.n, strategy, config.selection)
    for error in batch.unreadable:
        Console(stderr=True).print(f"skipped: {error}", highlight=False, soft_wrap=True)
    written = write_batch(batch.rows, output, fmt or config.export.format, load_labels())
    read = len(files) - len(batch.unreadable)
    Console().print(f"{len(batch.rows)} units of {read} report(s) by {strategy} ({batch.labelled_left_out} already "
                    f"labelled left out): {', '.join(map(str, written))}", highlight=False)


@label_app.command("import")
def import_command(
    batch: Annotated[Path, typer.Argument(help="A reviewed batch: .jsonl, .csv, or a Label Studio JSON export")],
    annotator: Annotated[str, typer.Option("--annotator", help="Who reviewed the batch (kept with each label)")],
    into: Annotated[Path | None, typer.Option("--into", help="Labelled file to append to (default: "
                                                             "intake.into)")] = None,
    overrides: SetOption = None,
) -> None:
    """Check a reviewed batch against its reports and the existing labels, then append it with provenance.

    Nothing is written unless every row passes: unknown labels or units, changed texts, duplicates and labels
    that conflict with existing ones are listed instead. Settings: configs/label.yaml.

    Example: `chainstage label import batch.json --annotator wang --into data/labeled/new_genre.jsonl`
    """
    from data.label_intake import import_batch
    from data.labels import load_labels
    from data.reading_config import load_reading_config
    from models.classifier_config import load_classifier_config
    from training.label_config import load_label_config

    config = load_label_config(overrides=overrides)
    target = into or Path(config.intake.into)
    records = import_batch(batch, annotator, target, load_classifier_config().data.labeled_files, load_labels(),
                           load_reading_config(), config.intake.default_confidence)
    changed = sum(record["label"] != record["prelabel_label"] for record in records)
    Console().print(f"{len(records)} labels appended to {target} ({changed} differ from the model's pre-label)",
                    highlight=False)


@label_app.command("agreement")
def agreement_command(
    first: Annotated[Path, typer.Argument(help="One annotator's labelled file (JSONL)")],
    second: Annotated[Path, typer.Argument(help="The other annotator's labelled file")],
) -> None:
    """Cohen's kappa and the confusion matrix on the units both files label, and the units to adjudicate.

    Example: `chainstage label agreement data/labeled/provincial_pass1.jsonl data/labeled/provincial_pass2.jsonl`
    """
    from data.agreement import annotator_comparison
    from data.labels import load_labels

    names = load_labels().names
    result = annotator_comparison(first, second, names)
    console = Console(highlight=False)
    console.print(f"kappa {result['kappa']:.3f}, raw agreement {result['agreement']:.3f} over {result['units']} "
                  f"shared units")
    matrix = Table(title=f"rows: {first.name}, columns: {second.name}")
    matrix.add_column("")
    for name in names:
        matrix.add_column(name, justify="right")
    for name, row in zip(names, result["confusion"], strict=True):
        matrix.add_row(name, *map(str, row))
    console.print(matrix)
    to_adjudicate = Table(title=f"{len(result['to_adjudicate'])} units to adjudicate")
    for column in ("unit_id", first.name, second.name, "text"):
        to_adjudicate.add_column(column, overflow="fold")
    for unit in result["to_adjudicate"]:
        to_adjudicate.add_row(unit["unit_id"], unit["first"], unit["second"], unit["text"])
    console.print(to_adjudicate)
