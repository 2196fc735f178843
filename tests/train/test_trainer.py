import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from srgan_fast.train import trainer as train
from srgan_fast.checkpoints import load_generator
from srgan_fast.errors import SrganError


@pytest.fixture
def image_folder(tmp_path):
    """Four smooth 64x64 images: easy to learn, so a few steps visibly lower the loss."""
    folder = tmp_path / "hr"
    folder.mkdir()
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    for i in range(4):
        img = np.stack([np.sin(xx * (i + 2)), np.cos(yy * (i + 1)), xx * yy], -1) * 0.5 + 0.5
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def _args(folder, out, *extra):
    return train.parse_args(["--data", str(folder), "--out", str(out), "--blocks", "1", "--crop", "32",
                             "--batch", "4", "--no-progress", *extra])


def test_loss_decreases(image_folder, tmp_path):
    trainer = train.Trainer(_args(image_folder, tmp_path / "run", "--iters", "40", "--lr", "1e-3"))
    losses = [trainer.step()["loss"] for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses


def test_resume_continues_exactly(image_folder, tmp_path):
    straight = train.Trainer(_args(image_folder, tmp_path / "a", "--iters", "6", "--save-every", "3"))
    straight.run()
    first = train.Trainer(_args(image_folder, tmp_path / "b", "--iters", "3"))
    first.run()
    resumed = train.Trainer(_args(image_folder, tmp_path / "b", "--iters", "6", "--resume"))
    assert resumed.it == 3
    resumed.run()
    for (k, a), b in zip(straight.g.state_dict().items(), resumed.g.state_dict().values()):
        assert torch.equal(a, b), k
    g = load_generator(tmp_path / "b" / "generator.safetensors")
    assert g.num_blocks == 1
    # Outputs get the usual permissions (safetensors alone would leave 0600).
    umask = os.umask(0)
    os.umask(umask)
    for name in ("generator.safetensors", "train_state.safetensors", "history.json"):
        assert stat.S_IMODE((tmp_path / "b" / name).stat().st_mode) == 0o666 & ~umask, name


def test_validation_logs_psnr_and_texture(image_folder, tmp_path):
    t = train.Trainer(_args(image_folder, tmp_path / "v", "--iters", "2", "--val", str(image_folder),
                            "--val-every", "1"))
    history = t.run()
    assert [h["iter"] for h in history] == [1, 2]
    assert all(10 < h["val_psnr_y"] < 60 and 0 < h["val_texture"] < float("inf") for h in history), history
    # 64x64 photos: too small for NIQE (two 96x96 patches), so it is NaN; the grid ratio is measured
    assert all(np.isnan(h["val_niqe"]) and h["val_grid"] > 0 for h in history), history


def test_srgan_phase_smoke(image_folder, tmp_path):
    pre = train.Trainer(_args(image_folder, tmp_path / "pre", "--iters", "2"))
    pre.run()
    gan = train.Trainer(_args(image_folder, tmp_path / "gan", "--iters", "2", "--phase", "srgan",
                              "--init", str(tmp_path / "pre" / "generator.safetensors")))
    logs = gan.step()
    assert {"loss", "adv", "d"} <= set(logs) and all(np.isfinite(v) for v in logs.values())


def test_cli_errors(image_folder, tmp_path, capsys):
    assert train.main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert train.main(["--data", str(image_folder), "--phase", "srgan", "--out", str(tmp_path / "o")]) == 2
    assert "--init" in capsys.readouterr().err
    with pytest.raises(SrganError, match="multiple of 4"):
        train.Trainer(_args(image_folder, tmp_path / "c", "--crop", "30"))


def test_discriminator_warmup_keeps_the_generator_fixed(image_folder, tmp_path):
    pre = train.Trainer(_args(image_folder, tmp_path / "pre", "--iters", "1"))
    pre.run()
    gan = train.Trainer(_args(image_folder, tmp_path / "gan", "--iters", "4", "--phase", "srgan",
                              "--d-warmup", "2", "--init", str(tmp_path / "pre" / "generator.safetensors")))
    # Weights stay fixed (BatchNorm running statistics keep updating, as in any training step).
    g0 = {k: v.clone() for k, v in gan.g.named_parameters()}
    d0 = {k: v.clone() for k, v in gan.d.state_dict().items()}
    logs = [gan.step() for _ in range(2)]
    assert all("adv" not in entry and "d" in entry for entry in logs)
    params = dict(gan.g.named_parameters())
    assert all(torch.equal(v, params[k]) for k, v in g0.items())
    assert not all(torch.equal(v, gan.d.state_dict()[k]) for k, v in d0.items())
    assert "adv" in gan.step()  # after the warm-up both networks train
    assert not all(torch.equal(v, params[k]) for k, v in g0.items())


def test_discriminator_never_sees_the_crop_border(image_folder, tmp_path, monkeypatch):
    """--adv-margin: D (and so the adversarial gradient) sees only the inner crop; no gradient
    reaches the border pixels of SR from D."""
    pre = train.Trainer(_args(image_folder, tmp_path / "pre", "--iters", "1"))
    pre.run()
    gan = train.Trainer(_args(image_folder, tmp_path / "gan", "--iters", "2", "--phase", "srgan",
                              "--adv-margin", "8", "--vgg", "none",
                              "--init", str(tmp_path / "pre" / "generator.safetensors")))
    shapes = []
    forward = gan.d.forward
    monkeypatch.setattr(gan.d, "forward", lambda x: (shapes.append(tuple(x.shape[-2:])), forward(x))[1])
    gan.step()
    assert shapes and set(shapes) == {(16, 16)}  # 32-pixel crops less 8 on each side
    sr = torch.rand(1, 3, 32, 32, requires_grad=True)
    train._inner(sr, 8).sum().backward()
    assert sr.grad[..., :8, :].abs().sum() == 0 and sr.grad[..., 8:24, 8:24].abs().min() == 1
    assert train.main(["--data", str(image_folder), "--out", str(tmp_path / "o"), "--crop", "32",
                       "--adv-margin", "9"]) == 2


@pytest.mark.parametrize("gan", ["bce", "ragan"])
def test_both_discriminator_losses_train(image_folder, tmp_path, gan):
    pre = train.Trainer(_args(image_folder, tmp_path / "pre", "--iters", "1"))
    pre.run()
    t = train.Trainer(_args(image_folder, tmp_path / gan, "--iters", "2", "--phase", "srgan", "--gan", gan,
                            "--vgg", "none", "--init", str(tmp_path / "pre" / "generator.safetensors")))
    logs = t.step()
    assert {"adv", "d"} <= set(logs) and all(np.isfinite(v) for v in logs.values())


def test_sigterm_saves_the_run_like_ctrl_c(image_folder, tmp_path):
    """A preempted run (a cluster's SIGTERM) keeps what it trained: saved at the iteration it
    stopped, exit 130; --resume goes on from there."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from safetensors import safe_open

    from conftest import as_started_from_a_terminal

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "srgan_fast.train", "--data", str(image_folder), "--out", str(out),
           "--blocks", "1", "--crop", "32", "--batch", "4", "--no-progress", "--threads", "1",
           "--iters", "100000", "--save-every", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[2], preexec_fn=as_started_from_a_terminal)
    deadline = time.monotonic() + 120
    while not (out / "generators" / "000002.safetensors").exists():  # trained, saved once
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    saved = int(stdout.split("interrupted: saved iteration ")[1].split()[0])
    with safe_open(str(out / "train_state.safetensors"), framework="pt") as f:
        assert int(f.metadata()["iter"]) == saved >= 2
    resumed = train.Trainer(_args(image_folder, out, "--iters", str(saved + 1), "--resume"))
    assert resumed.it == saved
