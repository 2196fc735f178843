"""A job's manifest records the precision that RUNS (``auto`` as what it chose here), and a resume
compares what runs: manifests written before ``auto`` (which hold the precision asked) still
resume when the same precision runs, and a job whose parts ran another precision is refused."""
import json

import pytest
from jobfixtures import av, cli_args, clip, weights  # noqa: F401

from srgan_fast import precision, video
from srgan_fast.errors import SrganError
from srgan_fast.jobs.engine_spec import EngineSpec


def cpu(monkeypatch, bf16: bool) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: bf16)


@pytest.mark.parametrize("bf16", [True, False])
def test_the_identity_holds_the_precision_that_runs(monkeypatch, weights, bf16):
    cpu(monkeypatch, bf16)
    runs = "bf16" if bf16 else "fp32"
    spec = EngineSpec(backend="torch", precision="auto", weights=str(weights))
    assert spec.identity()["precision"] == runs
    for asked in ("fp16", "bf16"):      # both run bf16 on a CPU with bf16, fp32 without
        assert EngineSpec(backend="torch", precision=asked, weights=str(weights)).identity() == spec.identity()
    assert spec.same_precision("fp16") and spec.same_precision(runs)
    assert spec.same_precision("fp32") == (not bf16)
    assert not spec.same_precision("int8") and not spec.same_precision("nonsense")
    assert spec.pinned().precision == runs       # every worker asks what the parent chose


def test_manifests_before_auto_resume_when_the_same_precision_runs(monkeypatch, tmp_path):
    from srgan_fast.jobs.manifest import Manifest
    from srgan_fast.jobs.segments import Segment

    cpu(monkeypatch, True)
    spec = EngineSpec(backend="torch", precision="auto")
    segs = [Segment(0, None, None, 0, 0, 24, 1.0)]
    work = tmp_path / "o.mp4.parts"
    src = {"size": 1, "video_sha256": "a" * 64}
    old = {"backend": "torch", "precision": "fp16", "crf": 18.0}     # as recorded before auto
    m, _ = Manifest.open(work, src, old, segs, restart=False)
    m.record(0, {"bytes": 5, "sha256": "c" * 64, "frames": 24})
    same = {"precision": spec.same_precision}
    new = {"backend": "torch", "precision": spec.runs(), "crf": 18.0}
    m, resumed = Manifest.open(work, src, dict(new), segs, restart=False, same=same)
    assert resumed and m.data["done"] and m.data["settings"]["precision"] == "bf16"
    m.data["settings"]["precision"] = "fp32"                         # parts made at fp32
    m.save()
    with pytest.raises(SrganError, match="precision 'fp32' -> 'bf16'.*--restart"):
        Manifest.open(work, src, new, segs, restart=False, same=same)
    with pytest.raises(SrganError, match="crf"):                     # other settings: as before
        Manifest.open(work, src, {**new, "crf": 20.0}, segs, restart=False, same=same)


def test_a_job_begun_with_an_explicit_precision_resumes_at_auto(clip, weights, tmp_path, capsys):
    """Whatever this CPU has: fp16 runs what auto runs here (bf16, or fp32 without bf16), so the
    parts of a job begun with --precision fp16 (as an old manifest recorded it) are kept."""
    dst = tmp_path / "out.mp4"
    assert video.main(cli_args(clip, dst, weights, "--precision", "fp16", "--keep-parts")) == 0
    work = tmp_path / "out.mp4.parts"
    manifest = json.loads((work / "manifest.json").read_text())
    assert manifest["settings"]["precision"] == precision.plan("torch", "auto", "cpu").runs
    manifest["settings"]["precision"] = "fp16"                       # the precision asked, as before auto
    (work / "manifest.json").write_text(json.dumps(manifest))
    dst.unlink()
    capsys.readouterr()
    assert video.main(cli_args(clip, dst, weights)) == 0
    err = capsys.readouterr().err
    assert "resuming: 4 of 4 segments already done" in err, err
