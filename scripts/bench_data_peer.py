#!/usr/bin/env python3
"""Peer benchmark for the Go data pipeline: PIL decode + ImageNet train augmentation.

Measures images/s of the standard PyTorch ImageNet training input pipeline on
the train folder of an ImageNet-style tree (e.g. one written by
scripts/make_imagenet_like.py), so that the Go pipeline's numbers have a
reference point. Per image:

    Image.open(path).convert('RGB')                       # torchvision pil_loader
    RandomResizedCrop(224)      # scale (0.08, 1), ratio (3/4, 4/3), bilinear
    RandomHorizontalFlip()      # p = 0.5
    ToTensor()                  # uint8 HWC -> float32 CHW in [0, 1]
    Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])

Implementations ("peer" in the output):

* ``pil+torchvision``: torchvision.transforms, used when torchvision imports
  (torch is limited to one thread per worker).
* ``pil+numpy``: used when torchvision is not importable (or with
  ``--numpy``). A faithful reimplementation: RandomResizedCrop.get_params is
  the same algorithm (10 tries, then the central-crop fallback), the crop is
  ``img.crop(box)`` followed by ``img.resize((224, 224), BILINEAR)`` exactly as
  torchvision's resized_crop does for PIL images, the flip is
  ``img.transpose(FLIP_LEFT_RIGHT)``, and ToTensor + Normalize are float32
  numpy operations.

``--draft`` also runs a second, tuned mode that uses PIL's reduced-scale JPEG
decoding (``img.draft('RGB', (w, h))``, i.e. libjpeg DCT scaling by 1/2, 1/4
or 1/8). The crop is chosen on the full-size image first, and with the default
``--draft-policy crop`` the image is decoded at the smallest scale at which the
crop still has at least 224 pixels on both sides (so the output quality is
about that of the plain mode); ``--draft-policy image`` instead requests
``draft('RGB', (224, 224))`` for the whole image, which is faster but may
upsample small crops. The crop box is then mapped into the reduced image and
resized with ``img.resize((224, 224), BILINEAR, box=...)``.

Each worker is a single process (one thread), ``--workers N`` run in parallel;
each warms up on a few images before a common start barrier, and throughput
is total images / wall time (time.perf_counter) from the barrier until the
last worker finishes. The ``--images`` processed are the train files in a
seeded shuffled order, cycled as often as needed and dealt round-robin to the
workers. Files that fail to decode (see make_imagenet_like.py --bad) are
counted as errors and not as images. By default every file is read once
before timing so that all modes see a warm page cache.

Requires Pillow and numpy (``pip install pillow numpy``); torch/torchvision
are optional.

Example::

    scripts/bench_data_peer.py /tmp/imnet --workers 1 --images 1000 --draft --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time

try:
    import numpy as np
    import PIL
    from PIL import Image, features
except ImportError as exc:  # pragma: no cover - environment dependent
    sys.exit(f"error: {exc}; install the dependencies with: pip install pillow numpy")

SIZE = 224
SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
EXTENSIONS = (".jpeg", ".jpg", ".png")

BILINEAR = getattr(getattr(Image, "Resampling", Image), "BILINEAR")
FLIP_LEFT_RIGHT = getattr(getattr(Image, "Transpose", Image), "FLIP_LEFT_RIGHT")


def torchvision_status() -> tuple[bool, str]:
    """(importable, reason or version)."""
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        return False, "%s: %s" % (type(exc).__name__, exc)
    return True, "torch %s, torchvision %s" % (torch.__version__, torchvision.__version__)


def list_files(root: str) -> tuple[str, list[str]]:
    """The train folder under root (or root itself) and its image files, sorted."""
    train = os.path.join(root, "train")
    folder = train if os.path.isdir(train) else root
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(EXTENSIONS):
                files.append(os.path.join(dirpath, name))
    return folder, files


# ---------------------------------------------------------------------------
# The pipelines
# ---------------------------------------------------------------------------


def rrc_params(width: int, height: int, rng: random.Random) -> tuple[int, int, int, int]:
    """torchvision RandomResizedCrop.get_params: returns (top, left, height, width)."""
    area = height * width
    log_ratio = (math.log(RATIO[0]), math.log(RATIO[1]))
    for _ in range(10):
        target_area = area * rng.uniform(SCALE[0], SCALE[1])
        aspect_ratio = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = rng.randint(0, height - h)
            j = rng.randint(0, width - w)
            return i, j, h, w
    # Fallback to central crop
    in_ratio = float(width) / float(height)
    if in_ratio < min(RATIO):
        w = width
        h = int(round(w / min(RATIO)))
    elif in_ratio > max(RATIO):
        h = height
        w = int(round(h * max(RATIO)))
    else:  # whole image
        w = width
        h = height
    i = (height - h) // 2
    j = (width - w) // 2
    return i, j, h, w


class NumpyTail:
    """RandomHorizontalFlip + ToTensor + Normalize with PIL and numpy."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.mean = np.array(MEAN, np.float32).reshape(3, 1, 1)
        self.std = np.array(STD, np.float32).reshape(3, 1, 1)

    def __call__(self, img: Image.Image) -> np.ndarray:
        if self.rng.random() < 0.5:
            img = img.transpose(FLIP_LEFT_RIGHT)
        # ToTensor: HWC uint8 -> contiguous CHW float32 / 255.
        t = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32, order="C")
        t /= 255.0
        # Normalize (torchvision clones, then subtracts and divides in place).
        t -= self.mean
        t /= self.std
        return t


def make_torch_tail(with_flip: bool = True):
    import torchvision.transforms as T

    steps = [T.RandomHorizontalFlip()] if with_flip else []
    return T.Compose(steps + [T.ToTensor(), T.Normalize(mean=list(MEAN), std=list(STD))])


def pil_loader(path: str) -> Image.Image:
    """torchvision.datasets.folder.pil_loader."""
    with open(path, "rb") as f:
        img = Image.open(f)
        return img.convert("RGB")


def draft_scale(crop_w: int, crop_h: int) -> int:
    """Largest libjpeg scale denominator that keeps the crop >= SIZE on both sides."""
    for s in (8, 4, 2):
        if min(crop_w, crop_h) >= SIZE * s:
            return s
    return 1


def draft_crop(path: str, rng: random.Random, policy: str) -> Image.Image:
    """Decode at reduced scale and return the RandomResizedCrop output (PIL, SIZE x SIZE)."""
    with open(path, "rb") as f:
        img = Image.open(f)
        width, height = img.size
        i, j, h, w = rrc_params(width, height, rng)
        scale_x = scale_y = 1.0
        if img.format == "JPEG":
            if policy == "image":
                res = img.draft("RGB", (SIZE, SIZE))
            else:
                s = draft_scale(w, h)
                res = img.draft("RGB", (width // s, height // s)) if s > 1 else None
            if res is not None:
                box = res[1]  # (0, 0, width / scale, height / scale)
                scale_x, scale_y = width / box[2], height / box[3]
        img = img.convert("RGB")
    box = (j / scale_x, i / scale_y, (j + w) / scale_x, (i + h) / scale_y)
    return img.resize((SIZE, SIZE), BILINEAR, box=box)


def build_pipeline(mode: str, use_torchvision: bool, policy: str, seed: int):
    """Return a callable path -> normalized CHW float32 tensor/array."""
    rng = random.Random(seed)
    if use_torchvision:
        import torch
        import torchvision.transforms as T

        torch.set_num_threads(1)
        torch.manual_seed(seed)
        if mode == "plain":
            tf = T.Compose([T.RandomResizedCrop(SIZE), make_torch_tail()])
            return lambda path: tf(pil_loader(path))
        tail = make_torch_tail()
        return lambda path: tail(draft_crop(path, rng, policy))
    tail = NumpyTail(rng)
    if mode == "plain":
        def plain(path):
            img = pil_loader(path)
            i, j, h, w = rrc_params(img.width, img.height, rng)
            img = img.crop((j, i, j + w, i + h)).resize((SIZE, SIZE), BILINEAR)
            return tail(img)
        return plain
    return lambda path: tail(draft_crop(path, rng, policy))


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def worker_main(wid, mode, use_tv, policy, seed, files, warm, barrier, results):
    try:
        run = build_pipeline(mode, use_tv, policy, seed * 1000 + wid)
        for path in warm:
            try:
                run(path)
            except Exception:
                pass
        err = None
    except Exception as exc:  # report, but still meet the barrier
        err = "%s: %s" % (type(exc).__name__, exc)
    barrier.wait()
    if err is not None:
        results.put((wid, 0, 0, 0.0, err))
        return
    ok = errors = 0
    out = None
    t0 = time.perf_counter()
    for path in files:
        try:
            out = run(path)  # keep the result alive like a DataLoader would
            ok += 1
        except Exception:
            errors += 1
    elapsed = time.perf_counter() - t0
    del out
    results.put((wid, ok, errors, elapsed, None))


def measure(mode, args, use_tv, files) -> dict:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    order = list(range(len(files)))
    random.Random(args.seed).shuffle(order)
    seq = [files[order[k % len(files)]] for k in range(args.images)]
    shares = [seq[w :: args.workers] for w in range(args.workers)]
    barrier = ctx.Barrier(args.workers + 1)
    results = ctx.Queue()
    procs = []
    for w in range(args.workers):
        warm = [files[order[(w * args.warmup + k) % len(files)]] for k in range(args.warmup)]
        p = ctx.Process(target=worker_main, daemon=True,
                        args=(w, mode, use_tv, args.draft_policy, args.seed, shares[w], warm, barrier, results))
        p.start()
        procs.append(p)
    barrier.wait()
    t0 = time.perf_counter()
    got = [results.get() for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    failures = [g[4] for g in got if g[4]]
    if failures:
        raise RuntimeError("worker failed: " + failures[0])
    ok = sum(g[1] for g in got)
    errors = sum(g[2] for g in got)
    cores = min(args.workers, available_cores())
    ips = ok / wall if wall > 0 else 0.0
    return {
        "mode": mode if mode == "plain" else "draft-" + args.draft_policy,
        "images_per_sec": round(ips, 2),
        "images_per_sec_per_core": round(ips / cores, 2),
        "workers": args.workers,
        "images": ok,
        "errors": errors,
        "seconds": round(wall, 3),
        "per_worker_images_per_sec": [round(g[1] / g[3], 2) if g[3] > 0 else 0.0 for g in sorted(got)],
    }


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Show the module docstring as written, and the defaults."""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("root", help="tree root (its train/ folder is used) or a train folder of <class>/<image> files")
    p.add_argument("--workers", type=int, default=1, help="worker processes, one thread each")
    p.add_argument("--images", type=int, default=1000, help="images to process in total (cycling through the files)")
    p.add_argument("--warmup", type=int, default=8, help="untimed warm-up images per worker")
    p.add_argument("--draft", action="store_true",
                   help="also measure the tuned mode with PIL draft (reduced-scale JPEG decoding)")
    p.add_argument("--draft-policy", choices=("crop", "image"), default="crop",
                   help="crop: keep the crop >= 224 px after scaling; image: draft('RGB', (224, 224))")
    p.add_argument("--numpy", action="store_true", help="use the pil+numpy peer even when torchvision is importable")
    p.add_argument("--seed", type=int, default=0, help="seed for the file order and the augmentation")
    p.add_argument("--no-preread", action="store_true", help="do not read every file once before timing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    if args.workers < 1 or args.images < 1 or args.warmup < 0:
        p.error("--workers and --images must be >= 1 and --warmup >= 0")

    folder, files = list_files(args.root)
    if not files:
        p.error("no image files (%s) under %s" % ("/".join(EXTENSIONS), folder))
    if args.images < args.workers:
        p.error("--images must be at least --workers")

    tv_ok, tv_info = torchvision_status()
    use_tv = tv_ok and not args.numpy
    peer = "pil+torchvision" if use_tv else "pil+numpy"
    if not args.no_preread:
        for path in files:
            with open(path, "rb") as f:
                f.read()

    modes = ["plain"] + (["draft"] if args.draft else [])
    res = {m: measure(m, args, use_tv, files) for m in modes}

    out = dict(res["plain"])
    out.update({
        "peer": peer,
        "peer_note": tv_info if use_tv else ("--numpy given" if tv_ok else "torchvision not importable (%s)" % tv_info),
        "train_dir": os.path.abspath(folder),
        "files": len(files),
        "available_cores": available_cores(),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "libjpeg": features.version("jpg"),
        "libjpeg_turbo": features.version("libjpeg_turbo") if features.check_feature("libjpeg_turbo") else None,
        "numpy": np.__version__,
    })
    if args.draft:
        out["draft"] = res["draft"]
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print("peer: %s (%s)" % (peer, out["peer_note"]))
    print("files: %d under %s; Pillow %s, libjpeg %s%s, numpy %s, %d cores available"
          % (len(files), folder, PIL.__version__, out["libjpeg"],
             " (libjpeg-turbo %s)" % out["libjpeg_turbo"] if out["libjpeg_turbo"] else "", np.__version__,
             out["available_cores"]))
    for r in res.values():
        print("%-11s %d images (%d errors), %d worker(s): %.1f images/s, %.1f images/s/core (%.2fs)"
              % (r["mode"] + ":", r["images"], r["errors"], r["workers"], r["images_per_sec"],
                 r["images_per_sec_per_core"], r["seconds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
