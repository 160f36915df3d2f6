"""The output schema of `chainstage score`: stable, versioned, documented in docs/scoring.md (a test holds the two
together); every shard carries it, even an empty one, with each column's meaning as field metadata."""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "2"  # 2: units.ocr


def _field(name: str, kind: pa.DataType, description: str, nullable: bool = False) -> pa.Field:
    return pa.field(name, kind, nullable=nullable, metadata={"description": description})


def _list(item: pa.DataType) -> pa.DataType:
    """Lists name their item "element", as Parquet does, so that a table reads back with the schema it was given."""
    return pa.list_(pa.field("element", item))


_SHARES = _list(pa.struct([("stage", pa.string()), ("share", pa.float64())]))
_PATH = _list(pa.string())
_META = {"chainstage.schema_version": SCHEMA_VERSION}

UNIT_SCHEMA = pa.schema([
    _field("report_id", pa.string(), "first 16 hex digits of the SHA-256 of the report file's bytes"),
    _field("source", pa.string(), "path of the report file, relative to the archive (the first of identical files)"),
    _field("unit_id", pa.string(), "report_id-NNNN: the unit's position in the report"),
    _field("kind", pa.string(), "heading, body or furniture"),
    _field("section_path", _PATH, "headings above the unit, outermost first (a heading's own title is last)"),
    _field("start", pa.int64(), "offset of the unit's first character in the normalised report text"),
    _field("end", pa.int64(), "offset just past the unit's last character"),
    _field("text", pa.string(), "the unit"),
    _field("label", pa.string(), "most probable stage"),
    _field("probability", pa.float64(), "calibrated probability of label"),
    _field("second_label", pa.string(), "runner-up stage"),
    _field("second_probability", pa.float64(), "calibrated probability of second_label"),
    _field("uncertain", pa.bool_(), "probability below the model's predict.min_confidence"),
    _field("ocr", pa.bool_(), "read by OCR from a scanned page or image, so characters may be misread"),
], metadata=_META)

REPORT_SCHEMA = pa.schema([
    _field("report_id", pa.string(), "first 16 hex digits of sha256; joins the unit table"),
    _field("sha256", pa.string(), "SHA-256 of the report file's bytes"),
    _field("source", pa.string(), "first path (in sort order) holding these bytes, relative to the archive"),
    _field("paths", _PATH, "every path holding these bytes when the report was scored"),
    _field("units", pa.int64(), "units in the report"),
    _field("body_units", pa.int64(), "body units: the units that stage shares count"),
    _field("stage_shares", _SHARES, "share of body units per stage, in label order"),
    _field("section_shares", _list(pa.struct([
        ("section_path", _PATH), ("units", pa.int64()), ("stage_shares", _SHARES)])),
        "stage shares of each section's own body units, in document order"),
    _field("evidence", _list(pa.struct([
        ("stage", pa.string()), ("unit_id", pa.string()), ("text", pa.string()), ("probability", pa.float64())])),
        "the most confident body units of each stage, stage by stage"),
    _field("summaries", _list(pa.struct([
        ("section_path", _PATH), ("method", pa.string()), ("text", pa.string()), ("unit_ids", _PATH),
        ("spans", _list(pa.struct([("start", pa.int64()), ("end", pa.int64())])))])),
        "summary of each section with body units of its own (method: extractive, whole or abstractive), "
        "with the unit ids and offsets of its sentences; null when summaries are off", nullable=True),
], metadata=_META)

ERROR_SCHEMA = pa.schema([
    _field("path", pa.string(), "the file that could not be scored, relative to the archive"),
    _field("sha256", pa.string(), "SHA-256 of its bytes; null when it could not even be read", nullable=True),
    _field("reason", pa.string(), "why: empty, binary, undecodable, truncated or corrupt, no Chinese text, ..."),
], metadata=_META)

FILE_SCHEMA = pa.schema([
    _field("path", pa.string(), "every supported file found in the archive by the latest run, relative to it"),
    _field("sha256", pa.string(), "SHA-256 of its bytes; null when it could not be read", nullable=True),
    _field("report_id", pa.string(), "its row in the report table; null when it failed", nullable=True),
    _field("status", pa.string(), "scored or failed"),
], metadata=_META)
