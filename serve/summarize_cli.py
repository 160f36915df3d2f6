"""``chainstage summarize`` and ``chainstage evaluate-summary``: thin commands over models.summarizer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from data.errors import ConfigError
from models.folder_layout import default_model_dir, is_model_folder
from models.summarizer import SectionSummary
from serve.options import BackendOption, ModelOption, ReportFileArgument, SetOption

SummaryFormat = Literal["text", "jsonl", "markdown"]


def _write(summaries: list[SectionSummary], fmt: SummaryFormat, source: str) -> None:
    """Text for reading, JSONL for tools (every field, ids and offsets included), Markdown for reports."""
    out = sys.stdout
    for summary in summaries:
        title = " / ".join(summary.section_path) or "(before the first heading)"
        if summary.stage:
            title = f"{summary.stage} (report-level)"
        if fmt == "jsonl":
            out.write(json.dumps({"source": source, **summary.to_dict()}, ensure_ascii=False) + "\n")
        elif fmt == "markdown":
            depth = min(len(summary.section_path), 4) if not summary.stage else 1
            out.write(f"{'#' * (depth + 1)} {summary.section_path[-1] if summary.section_path else title}\n\n"
                      f"{summary.text}\n\n<sub>{len(summary.unit_ids)} of {summary.source_units} units: "
                      f"{', '.join(summary.unit_ids)}</sub>\n\n")
        else:
            out.write(f"{title}\n  {summary.text}\n  [{len(summary.text)} of {summary.source_chars} characters; "
                      f"units {', '.join(uid.rsplit('-', 1)[-1] for uid in summary.unit_ids)}]\n\n")


def summarize_command(
    file: ReportFileArgument,
    ratio: Annotated[float | None, typer.Option(help="Summary length as a share of each section (0-1]")] = None,
    max_chars: Annotated[int | None, typer.Option(help="Summary length in characters per section")] = None,
    section: Annotated[str | None, typer.Option(help="Only this section (and its subsections): a heading or "
                                                     "its start, parts joined by /, e.g. '二、/（三）'")] = None,
    fmt: Annotated[SummaryFormat, typer.Option("--format", "-f", help="text, jsonl or markdown")] = "text",
    by_stage: Annotated[bool, typer.Option("--by-stage", help="One report-level summary per stage instead")] = False,
    model: ModelOption = None,
    backend: BackendOption = None,
    overrides: SetOption = None,
) -> None:
    """Condense each section of a report into a short summary, in document order, traceable to its units.

    Settings: configs/summarizer.yaml.

    Example: `chainstage summarize seeds/001_2040a8d96ddfc16d.txt --ratio 0.2 --section '二、/（三）'`
    """
    from models.predictor import Predictor
    from models.summarizer import summarize_by_stage, summarize_report
    from models.summarizer_config import load_summarizer_config, make_budget

    config = load_summarizer_config(overrides=overrides)
    budget = make_budget(config, ratio, max_chars)
    # one pass: embeddings and stage probabilities together
    classified = Predictor.load(model, backend=backend).classify(file)
    if by_stage:
        summaries = summarize_by_stage(classified, config, budget)
    else:
        summaries = summarize_report(classified, config, budget, section=section)
    _write(summaries, fmt, str(file))


def evaluate_summary_command(
    model: ModelOption = None,
    base_encoder: Annotated[bool, typer.Option("--base-encoder", help="Use the frozen base encoder even when a "
                                                                      "classifier is trained (reproducible tables)")
                            ] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for results (default: "
                                                                       "evaluation.output_dir)")] = None,
    tune: Annotated[bool, typer.Option("--tune", help="Also search evaluation.tune_grid, judged by "
                                                      "leave-one-report-out")] = False,
    overrides: SetOption = None,
) -> None:
    """Character-level ROUGE-1/2/L of the summarizer vs Lead-k, TextRank and the extractive oracle.

    Unit embeddings and stage probabilities come from the --model folder, by default from the trained default model
    if there is one, else from the frozen base encoder. Settings: configs/summarizer.yaml.

    Example: `chainstage evaluate-summary --base-encoder --tune -o runs/summary-eval`
    """
    from models.summarizer_config import load_summarizer_config
    from training.summary_eval import (
        evaluate_summaries,
        load_eval_sections,
        results_markdown,
        tune_weights,
        tuning_markdown,
    )

    config = load_summarizer_config(overrides=overrides)
    if model is not None and base_encoder:
        raise ConfigError("give --model or --base-encoder, not both")
    if model is None and not base_encoder and is_model_folder(default_model_dir()):
        model = default_model_dir()
    sections, source = load_eval_sections(config, model)
    output = output or Path(config.evaluation.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    results = evaluate_summaries(config, sections, source)
    (output / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    table = results_markdown(results)
    (output / "results.md").write_text(table, encoding="utf-8")
    print(table)
    if tune:
        tuned = tune_weights(config, sections, config.evaluation.tune_grid)
        (output / "tuning.json").write_text(json.dumps(tuned, ensure_ascii=False, indent=1), encoding="utf-8")
        text = tuning_markdown(tuned)
        (output / "tuning.md").write_text(text, encoding="utf-8")
        print(text)
