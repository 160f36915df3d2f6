"""Which units and sections a summary covers: a section's units, the sections that get a summary, the section a
``--section`` query names, and the parts a hierarchical summary balances."""

from __future__ import annotations

from collections.abc import Sequence

from data.errors import ConfigError
from data.segment import Report, Section, Unit


def common_path(units: Sequence[Unit]) -> list[str]:
    """The longest section path shared by all ``units``: the section they make up, subsections included."""
    path = list(units[0].section_path)
    for unit in units[1:]:
        while list(unit.section_path[: len(path)]) != path:
            path.pop()
    return path


def has_several_parts(units: Sequence[Unit], path: Sequence[str]) -> bool:
    """Whether ``units`` are one section under ``path`` whose body units lie in two or more parts (its own
    units, each subsection): with one part there is nothing to balance, and summarising it twice only loses."""
    depth = len(path)
    if not all(list(unit.section_path[:depth]) == list(path) for unit in units):
        return False
    parts = {unit.section_path[depth:depth + 1] for unit in units if unit.kind == "body"}
    return len(parts) >= 2


def section_units(section: Section, hierarchical: bool) -> list[Unit]:
    """The units a section's summary draws on: its own, or with its subsections' when ``hierarchical``. The root
    keeps its own either way: its summary is of the preamble before the first heading, not of the report."""
    return section.all_units() if hierarchical and section.heading is not None else list(section.units)


def summary_sections(report: Report, hierarchical: bool) -> list[Section]:
    """Sections that get a summary: the preamble before the first heading (if it has body units), then every
    headed section with body units of its own (or, when ``hierarchical``, in its subsections), in document
    order."""
    sections = [report.root, *report.sections()]
    return [section for section in sections
            if any(unit.kind == "body" for unit in section_units(section, hierarchical))]


def find_section(report: Report, query: str) -> Section:
    """The section named by ``query``: '/'-separated parts, each a prefix of a heading, matching the path's end.

    ``（三）`` or ``一、/（三）`` or a full title all work; an ambiguous or unknown query raises ConfigError.
    """
    parts = [part.strip() for part in query.split("/") if part.strip()]
    if not parts:
        raise ConfigError("--section is empty: give a heading, e.g. --section '（一）'")

    def matches(path: tuple[str, ...]) -> bool:
        tail = path[-len(parts):] if len(path) >= len(parts) else None
        return tail is not None and all(title.startswith(part) for title, part in zip(tail, parts, strict=True))

    found = [section for section in report.sections() if matches(section.path)]
    exact = [section for section in found if section.path[-1] == parts[-1]]
    found = exact if len(exact) == 1 else found
    if not found:
        raise ConfigError(f"{report.source}: no section matches --section '{query}' (see `chainstage segment` for "
                          "the headings)")
    if len(found) > 1:
        options = "; ".join(" / ".join(section.path) for section in found[:4])
        raise ConfigError(f"{report.source}: --section '{query}' matches {len(found)} sections ({options}); give "
                          "more of the path, parts separated by /")
    return found[0]

