"""`--engine ray` on a local Ray started by the test with 2 CPUs: the same tables as the local engine, and a job
started on one engine resumes on the other."""

from __future__ import annotations

import pytest
from test_score import SETTINGS, assert_same_tables, reference_run

from serve.job_manifest import Manifest
from serve.score_config import load_score_config
from serve.score_job import score_archive

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

pytestmark = pytest.mark.slow  # starting Ray and its actors takes a while; CI still runs these


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model):
    return reference_run(tmp_path_factory, tiny_model)


def test_ray_with_two_actors_writes_the_same_tables_as_the_local_engine(local_ray, reference, tmp_path):
    archive, model, reference_out = reference
    config = load_score_config(overrides=[*SETTINGS, "engine=ray", "workers=2"])
    summary = score_archive(archive, tmp_path / "out", model, config, progress=False)
    assert (summary.scored, summary.failed, summary.duplicates) == (4, 4, 1)
    assert ray.is_initialized()  # the job used the Ray it found, and left it running
    assert_same_tables(tmp_path / "out", reference_out)


def test_a_job_interrupted_on_the_local_engine_resumes_on_ray(local_ray, reference, tmp_path, monkeypatch):
    archive, model, reference_out = reference
    out = tmp_path / "out"
    commit = Manifest.commit

    def crash_on_second(self, result):
        if result.chunk == 1:
            raise RuntimeError("injected crash")
        commit(self, result)

    monkeypatch.setattr(Manifest, "commit", crash_on_second)
    with pytest.raises(RuntimeError, match="injected crash"):
        score_archive(archive, out, model, load_score_config(overrides=SETTINGS), progress=False)
    monkeypatch.setattr(Manifest, "commit", commit)
    config = load_score_config(overrides=[*SETTINGS, "engine=ray", "workers=2"])
    summary = score_archive(archive, out, model, config, progress=False)
    assert (summary.skipped, summary.scored) == (2, 2)
    assert_same_tables(out, reference_out)
