"""The analyst commands: `chainstage profile` (stage profiles and their chart) and `chainstage report` (HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from data.errors import ChainstageError
from serve.options import ModelOption
from serve.tables import OutputFormat, write_rows

FilesArgument = Annotated[list[Path], typer.Argument(help="Report files: .txt .md .docx .pdf .html")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="Override a configs/analyst.yaml key: "
                                                                   "--set chart.max_bars=12")]


def _error(err: BaseException) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {err}", markup=True, highlight=False, soft_wrap=True)


def profile_command(
    files: FilesArgument,
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw the profiles as stacked bars: .png, .svg")] = None,
    model: ModelOption = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table, jsonl or csv")] = "table",
    overrides: SetOption = None,
) -> None:
    """Print each report's stage profile, overall and per section; --plot draws them side by side.

    Example: `chainstage profile seeds/000_dd476d6a277efa8f.txt seeds/001_2040a8d96ddfc16d.txt --plot profile.png`
    """
    from data.labels import load_labels
    from models.predictor import Predictor
    from models.stage_profile import stage_profile
    from serve.analyst_config import load_analyst_config
    from serve.profile_chart import profile_rows, save_profile_chart

    config = load_analyst_config(overrides=overrides)
    predictor = Predictor.load(model)
    profiles, failed = [], 0
    for path in files:
        try:
            classified = predictor.classify(path)
        except ChainstageError as err:
            _error(err)
            failed += 1
            continue
        profile = stage_profile(classified, predictor.config.predict.evidence_per_stage)
        profiles.append(profile)
        if fmt == "table":
            _print_profile_table(profile, path)
        else:
            write_rows(profile_rows(profile), ["report_id", "scope", "section_path", "units", *profile["overall"]],
                       fmt)
    if plot is not None and profiles:
        Console(stderr=True).print(f"chart: {save_profile_chart(profiles, plot, load_labels(), config.chart)}")
    if failed:
        raise typer.Exit(code=1)


def _print_profile_table(profile: dict, path: Path) -> None:
    """The profile as a readable table: percentages, sections indented by depth under the whole report."""
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
    Console().print(table)


def report_command(
    file: Annotated[Path, typer.Argument(help="Report file: .txt .md .docx .pdf .html")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the HTML page")],
    model: ModelOption = None,
    screenshot: Annotated[Path | None, typer.Option(help="Also save a PNG of the page as headless Chromium shows "
                                                         "it (needs Debian's chromium and the browser extra)")] = None,
    overrides: SetOption = None,
) -> None:
    """Write one self-contained HTML page: text highlighted by stage, filter, section summaries, profile chart.

    Example: `chainstage report seeds/003_1e2a77e6e55b6189.txt -o report.html`
    """
    from data.labels import load_labels
    from models.predictor import Predictor
    from models.summarizer import load_summarizer_config, summarize_report
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
