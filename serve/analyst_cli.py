"""The analyst commands: `chainstage profile` (stage profiles and their chart) and `chainstage report` (HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from serve.error_lines import EachFile
from serve.options import FormatOption, ModelOption, ReportFileArgument, ReportFilesArgument, SetOption
from serve.tables import write_rows


def profile_command(
    files: ReportFilesArgument,
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw the profiles as stacked bars: .png, .svg")] = None,
    model: ModelOption = None,
    fmt: FormatOption = "table",
    overrides: SetOption = None,
) -> None:
    """Print each report's stage profile, overall and per section; --plot draws them side by side.

    Settings: configs/analyst.yaml (`--set chart.max_bars=12`).

    Example: `chainstage profile seeds/000_dd476d6a277efa8f.txt seeds/001_2040a8d96ddfc16d.txt --plot profile.png`
    """
    from data.labels import load_labels
    from models.predictor import Predictor
    from models.stage_profile import stage_profile
    from serve.analyst_config import load_analyst_config
    from serve.profile_chart import profile_rows, save_profile_chart

    config = load_analyst_config(overrides=overrides)
    predictor = Predictor.load(model)
    profiles = []
    reports = EachFile(files, predictor.classify)
    for path, classified in reports:
        profile = stage_profile(classified, predictor.config.predict.evidence_per_stage)
        profiles.append(profile)
        if fmt == "table":
            print_profile(profile, path)
        else:
            write_rows(profile_rows(profile), ["report_id", "scope", "section_path", "units", *profile["overall"]],
                       fmt)
    if plot is not None and profiles:
        Console(stderr=True).print(f"chart: {save_profile_chart(profiles, plot, load_labels(), config.chart)}")
    reports.finish()


def print_profile(profile: dict, path: Path) -> None:
    """A stage profile as readable tables: percentages, sections indented by depth under the whole report, then
    the most confident evidence for each stage (`profile` and `classify` print profiles this one way)."""
    from rich.table import Table

    from serve.profile_chart import Bar, profile_rows, with_parent_rows

    table = Table(title=f"stage profile of {path} ({profile['units']} body units)", expand=True)
    table.add_column("section", overflow="fold", ratio=3)
    table.add_column("units", justify="right", no_wrap=True)
    for name in profile["overall"]:  # two characters a line keeps six stage columns inside 80 columns
        table.add_column("\n".join(name[i:i + 2] for i in range(0, len(name), 2)), justify="right", no_wrap=True)
    rows = profile_rows(profile)
    table.add_row("全文", str(rows[0]["units"]), *(f"{rows[0][name]:.0%}" for name in profile["overall"]))
    # the same tree as the chart: a parent heading without units of its own gets an empty row
    for bar in with_parent_rows([Bar(tuple(row["section_path"]), row["units"],
                                            {name: row[name] for name in profile["overall"]}) for row in rows[1:]]):
        title = "　" * (len(bar.path) - 1) + bar.path[-1] if bar.path else "篇首"
        shares = [f"{bar.shares[name]:.0%}" for name in profile["overall"]] if bar.units else []
        table.add_row(title, str(bar.units) if bar.units else "", *shares)
    evidence = Table(expand=True)
    evidence.add_column("stage", no_wrap=True)
    evidence.add_column("most confident evidence", overflow="fold", ratio=1)
    for name, units in profile["evidence"].items():
        evidence.add_row(name, "\n".join(f"{unit['probability']:.2f} {unit['text']}" for unit in units))
    console = Console()
    console.print(table)
    console.print(evidence)


def report_command(
    file: ReportFileArgument,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the HTML page")],
    model: ModelOption = None,
    screenshot: Annotated[Path | None, typer.Option(help="Also save a PNG of the page as headless Chromium shows "
                                                         "it (needs Debian's chromium and the browser extra)")] = None,
    overrides: SetOption = None,
) -> None:
    """Write one self-contained HTML page: text highlighted by stage, filter, section summaries, profile chart.

    Settings: configs/analyst.yaml (`--set page.tint=0.3`).

    Example: `chainstage report seeds/003_1e2a77e6e55b6189.txt -o report.html`
    """
    from data.labels import load_labels
    from models.predictor import Predictor
    from models.summarizer import summarize_report
    from models.summarizer_config import load_summarizer_config
    from serve.analyst_config import load_analyst_config
    from serve.report_page import screenshot_page, write_report_page

    config = load_analyst_config(overrides=overrides)
    predictor = Predictor.load(model)
    classified = predictor.classify(file)
    summaries = summarize_report(classified, load_summarizer_config())
    page = write_report_page(classified, summaries, load_labels(), config, predictor.folder.name, output)
    Console(stderr=True).print(f"report page: {page}")
    if screenshot is not None:
        Console(stderr=True).print(f"screenshot: {screenshot_page(page, screenshot, config)}")
