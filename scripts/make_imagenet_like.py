#!/usr/bin/env python3
"""Write an ImageNet-like folder tree of synthetic but realistic JPEGs.

The tree is meant for tests and benchmarks of the Go data pipeline (JPEG
decode + ImageNet augmentation). Layout (default)::

    OUT/train/<wnid>/<wnid>_<k>.JPEG
    OUT/val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG

or, with ``--val-labels``, the alternative flat validation layout::

    OUT/val/ILSVRC2012_val_<8 digits>.JPEG
    OUT/val_labels.txt            one "<file> <wnid>" line per val file

Class folders use synthetic WordNet-style ids ``n00000000``, ``n00000001``, ...
(the letter n followed by the zero-padded 0-based class index, like
``n01440764``). Validation images are numbered 1..N in a seeded order that
interleaves the classes, as in the real ILSVRC2012 validation set; the same
seed gives the same val images in both layouts.

What the images look like:

* Sizes vary around the ImageNet average (about 500x375): mostly widths
  300..800 with aspect ratios (width/height) 0.6..1.8, biased towards 4:3,
  plus a few percent small images (e.g. 120x90) and large ones (e.g.
  1200x900).
* Content compresses like photographs: smooth gradients and colour blotches,
  soft- and hard-edged shapes, multi-octave texture whose strength varies
  across the frame (smooth "sky" next to detailed "foliage"), and sensor
  noise. At 500x375 and quality 90 a typical file is roughly 50-150 KB.
* A few percent are grayscale (mode L) and CMYK (mode CMYK; Pillow writes an
  Adobe, inverted CMYK JPEG; K is computed by full grey-component
  replacement, so decoders that ignore K get visibly wrong colours).
* Some are progressive JPEGs, and some RGB files use 4:4:4 or 4:2:2 chroma
  subsampling instead of the default 4:2:0.
* ``--bad N`` adds N broken files per split (cycling through: a truncated
  JPEG, a zero-byte file, a PNG named .JPEG, random bytes named .JPEG), in
  random class folders (or flat val/, listed in val_labels.txt with a
  random class). They are listed in OUT/bad_files.txt.

Output is deterministic for a given seed and options (each file gets its own
random stream derived from the seed, split, class and index, so ``--jobs``
does not change the bytes; it does assume the same Pillow/libjpeg build).

Requires Pillow and numpy (``pip install pillow numpy``).

Example::

    scripts/make_imagenet_like.py /tmp/imnet --classes 10 \\
        --train-per-class 30 --val-per-class 5 --bad 4
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import statistics
import sys
import time

try:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter
except ImportError as exc:  # pragma: no cover - environment dependent
    sys.exit(f"error: {exc}; install the dependencies with: pip install pillow numpy")

SPLIT_IDS = {"train": 1, "val": 2}
BAD_KINDS = ("truncated", "empty", "png", "random")
# Stream tags that keep the random streams of different jobs apart.
TAG_IMAGE, TAG_BAD, TAG_ORDER = 0, 1, 2
# Overall texture strength, calibrated so that a 500x375 RGB image at quality
# 90 is typically 50-150 KB, like real photos.
TEXTURE_GAIN = 4.5


def wnid(k: int) -> str:
    """Synthetic WordNet-style id of class k (0-based): n00000000, n00000001, ..."""
    return "n%08d" % k


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """Independent random stream for one job, derived from the seed and keys."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


# ---------------------------------------------------------------------------
# Image synthesis
# ---------------------------------------------------------------------------


def pick_size(rng: np.random.Generator, fixed: tuple[int, int] | None) -> tuple[int, int]:
    """Pick (width, height) distributed roughly like ImageNet photos."""
    if fixed is not None:
        return fixed
    u = rng.random()
    if u < 0.04:  # small thumbnails
        w, h = [(120, 90), (90, 120), (160, 120), (100, 100), (150, 113)][rng.integers(5)]
        return int(w), int(h)
    if u < 0.07:  # large camera-ish images
        w, h = [(1200, 900), (900, 1200), (1024, 768), (1280, 960), (1600, 1067)][rng.integers(5)]
        return int(w), int(h)
    w = int(round(rng.triangular(300, 440, 760)))
    v = rng.random()
    if v < 0.50:
        aspect = 4 / 3  # the most common ImageNet shape (e.g. 500x375)
    elif v < 0.58:
        aspect = 3 / 4
    elif v < 0.65:
        aspect = 1.0
    else:  # anything from portrait 0.6 to panorama-ish 1.8, mostly landscape
        aspect = rng.triangular(0.6, 1.5, 1.8)
    h = max(60, int(round(w / aspect)))
    return w, h


def smooth_field(rng: np.random.Generator, w: int, h: int, period: float, channels: int = 1) -> np.ndarray:
    """Value noise: a random grid with the given period (pixels), bicubically
    upsampled to h x w. Returns float32 (h, w) or (h, w, channels), about unit
    variance."""
    if period <= 1.0:
        out = rng.standard_normal((h, w, channels), dtype=np.float32)
        return out[..., 0] if channels == 1 else out
    gw = max(2, int(math.ceil(w / period)) + 2)
    gh = max(2, int(math.ceil(h / period)) + 2)
    planes = []
    for _ in range(channels):
        grid = rng.standard_normal((gh, gw), dtype=np.float32)
        # Sample the grid over a box slightly inside its border so the field
        # has no visible edge effects.
        box = (0.5, 0.5, 0.5 + w / period, 0.5 + h / period)
        img = Image.frombytes("F", (gw, gh), grid.tobytes())
        planes.append(np.asarray(img.resize((w, h), Image.BICUBIC, box=box), dtype=np.float32))
    if channels == 1:
        return planes[0]
    return np.stack(planes, axis=-1)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A photo-plausible colour: moderately saturated, not too extreme."""
    base = rng.uniform(30, 225)
    tint = rng.normal(0, 45, size=3)
    return np.clip(base + tint, 5, 250).astype(np.float32)


def shape_mask(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """An 'L' mask with one random shape (ellipse, rectangle, polygon, thick line)."""
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
    rx = rng.uniform(0.05, 0.45) * w
    ry = rx * math.exp(rng.uniform(-0.8, 0.8))
    kind = rng.integers(4)
    if kind == 0:
        d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    elif kind == 1:
        d.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
    elif kind == 2:
        n = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * math.pi, n))
        rad = rng.uniform(0.4, 1.0, n)
        pts = [(cx + rx * r * math.cos(a), cy + ry * r * math.sin(a)) for a, r in zip(ang, rad)]
        d.polygon(pts, fill=255)
    else:
        x2, y2 = rng.uniform(0, w), rng.uniform(0, h)
        d.line([(cx, cy), (x2, y2)], fill=255, width=int(rng.integers(2, max(3, min(w, h) // 12))))
    if rng.random() < 0.5:  # soft (out-of-focus) edge
        mask = mask.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 8.0)))
    return mask


def synth_rgb(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Synthesize a photo-like RGB image as uint8 (h, w, 3)."""
    scale = math.sqrt(w * h / (500 * 375))  # keep features proportional to size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # 1. Background: linear gradient between two colours + colour blotches.
    theta = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(theta) + yy * math.sin(theta)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    c0, c1 = random_colour(rng), random_colour(rng)
    img = c0 + (c1 - c0) * t[..., None]
    img += smooth_field(rng, w, h, rng.uniform(80, 200) * scale, 3) * rng.uniform(8, 30)

    # Per-image "busyness" and a map of where the detail lives.
    detail = float(np.exp(rng.normal(0.0, 0.5)))
    region = smooth_field(rng, w, h, rng.uniform(90, 220) * scale)
    region = 1.0 / (1.0 + np.exp(-2.5 * (region + rng.uniform(-0.6, 0.9))))  # 0=smooth .. 1=busy

    # 2. Shapes, each filled with its own colour and texture (composited only
    #    inside the shape's bounding box).
    fill_tex = smooth_field(rng, w, h, rng.uniform(20, 80) * scale, 3)
    for _ in range(int(rng.integers(3, 12))):
        mask = shape_mask(rng, w, h)
        bbox = mask.getbbox()
        if bbox is None:
            continue
        x0, y0, x1, y1 = bbox
        m = np.asarray(mask.crop(bbox), dtype=np.float32)[..., None] * (1.0 / 255.0)
        sub = img[y0:y1, x0:x1]
        tex = fill_tex[y0:y1, x0:x1][..., rng.permutation(3)] * rng.uniform(-25, 25)
        sub += ((random_colour(rng) + tex) - sub) * m
        if rng.random() < 0.4:  # shapes occlude and carry their own busy texture
            r = region[y0:y1, x0:x1]
            r += (rng.uniform(0.0, 1.0) - r) * m[..., 0]

    # 3. Texture: multi-octave luminance noise (plus weaker chroma texture),
    #    amplitude modulated by the region map.
    lum = np.zeros((h, w), np.float32)
    for period, amp in ((48, 7.0), (16, 6.0), (6, 5.5), (2.5, 5.0), (1.0, 4.0)):
        lum += smooth_field(rng, w, h, period * (scale if period > 6 else 1.0)) * (amp * TEXTURE_GAIN)
    chroma = smooth_field(rng, w, h, 6 * scale, 3) * 2.5
    tex = (lum[..., None] + chroma) * (detail * (0.15 + 1.0 * region))[..., None]
    img += tex

    # 4. Vignetting and sensor noise.
    if rng.random() < 0.5:
        r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) * 2.0
        img *= (1.0 - rng.uniform(0.1, 0.4) * r2)[..., None]
    img += rng.standard_normal((h, w, 3), dtype=np.float32) * rng.uniform(0.8, 2.2)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def rgb_to_cmyk(rgb: np.ndarray) -> np.ndarray:
    """RGB -> CMYK with full grey-component replacement (the same model as Go's
    color.RGBToCMYK; Pillow's CMYK->RGB inverts it exactly)."""
    rgb = rgb.astype(np.int32)
    mx = rgb.max(axis=-1)
    k = 255 - mx
    safe = np.maximum(mx, 1)[..., None]
    cmy = ((mx[..., None] - rgb) * 255 + safe // 2) // safe
    cmy[mx == 0] = 0
    return np.concatenate([cmy, k[..., None]], axis=-1).astype(np.uint8)


def encode_image(rng: np.random.Generator, args, fixed) -> tuple[bytes, dict]:
    """Generate one image and encode it. Returns (jpeg bytes, info)."""
    w, h = pick_size(rng, fixed)
    u = rng.random()
    mode = "L" if u < args.gray_frac else ("CMYK" if u < args.gray_frac + args.cmyk_frac else "RGB")
    progressive = bool(rng.random() < args.progressive_frac)
    v = rng.random()
    subsampling = -1  # libjpeg default: 4:2:0 for colour
    if mode == "RGB" and v < 0.15:
        subsampling = 0 if v < 0.10 else 1  # 4:4:4 or 4:2:2
    arr = synth_rgb(rng, w, h)
    if mode == "L":
        img = Image.fromarray(arr).convert("L")
    elif mode == "CMYK":
        img = Image.frombytes("CMYK", (w, h), rgb_to_cmyk(arr).tobytes())
    else:
        img = Image.fromarray(arr)
    buf = io.BytesIO()
    kw = {"quality": args.quality, "progressive": progressive}
    if subsampling != -1:
        kw["subsampling"] = subsampling
    img.save(buf, "JPEG", **kw)
    info = {"w": w, "h": h, "mode": mode, "progressive": progressive,
            "subsampling": {-1: "4:2:0", 0: "4:4:4", 1: "4:2:2"}[subsampling]}
    return buf.getvalue(), info


def make_bad(rng: np.random.Generator, kind: str, args) -> bytes:
    """Bytes of one broken file of the given kind."""
    if kind == "empty":
        return b""
    if kind == "random":
        data = bytearray(rng.integers(0, 256, size=int(rng.integers(1024, 20480)), dtype=np.uint8).tobytes())
        data[0] = 0x42  # never a JPEG/PNG/GIF signature by accident
        return bytes(data)
    if kind == "png":
        w, h = int(rng.integers(120, 400)), int(rng.integers(90, 300))
        buf = io.BytesIO()
        Image.fromarray(synth_rgb(rng, w, h)).save(buf, "PNG")
        return buf.getvalue()
    # truncated: a valid JPEG cut somewhere in its entropy-coded data
    data, _ = encode_image(rng, args, (int(rng.integers(300, 640)), int(rng.integers(240, 480))))
    return data[: int(len(data) * rng.uniform(0.3, 0.8))]


# ---------------------------------------------------------------------------
# Tree layout
# ---------------------------------------------------------------------------


def plan(args) -> tuple[list[tuple], list[tuple], dict[str, str]]:
    """List the jobs. Returns (image jobs, bad-file jobs, val labels).

    An image job is (split, class, index, relpath); a bad job is
    (split, bad index, kind, relpath, class)."""
    jobs, bad_jobs, val_labels = [], [], {}
    for c in range(args.classes):
        for k in range(args.train_per_class):
            jobs.append(("train", c, k, os.path.join("train", wnid(c), "%s_%d.JPEG" % (wnid(c), k + 1))))
    # Val numbering interleaves the classes in a seeded order.
    n_val = args.classes * args.val_per_class
    order = rng_for(args.seed, TAG_ORDER).permutation(n_val)
    for pos, flat in enumerate(order):
        c, k = int(flat) // args.val_per_class, int(flat) % args.val_per_class
        name = "ILSVRC2012_val_%08d.JPEG" % (pos + 1)
        rel = os.path.join("val", name) if args.val_labels else os.path.join("val", wnid(c), name)
        jobs.append(("val", c, k, rel))
        val_labels[name] = wnid(c)
    for split in ("train", "val"):
        for b in range(args.bad):
            kind = BAD_KINDS[b % len(BAD_KINDS)]
            c = int(rng_for(args.seed, TAG_BAD, SPLIT_IDS[split], b, 0).integers(args.classes))
            if split == "train":
                rel = os.path.join("train", wnid(c), "%s_bad%d_%s.JPEG" % (wnid(c), b + 1, kind))
            else:
                name = "ILSVRC2012_val_bad%d_%s.JPEG" % (b + 1, kind)
                rel = os.path.join("val", name) if args.val_labels else os.path.join("val", wnid(c), name)
                val_labels[name] = wnid(c)
            bad_jobs.append((split, b, kind, rel, c))
    return jobs, bad_jobs, val_labels


def run_image_job(job) -> dict:
    split, c, k, rel, out, args, fixed = job
    rng = rng_for(args.seed, TAG_IMAGE, SPLIT_IDS[split], c, k)
    data, info = encode_image(rng, args, fixed)
    with open(os.path.join(out, rel), "wb") as f:
        f.write(data)
    info.update(split=split, bytes=len(data))
    return info


def run_bad_job(job) -> dict:
    split, b, kind, rel, out, args = job
    rng = rng_for(args.seed, TAG_BAD, SPLIT_IDS[split], b, 1)
    data = make_bad(rng, kind, args)
    with open(os.path.join(out, rel), "wb") as f:
        f.write(data)
    return {"split": split, "kind": kind, "path": rel, "bytes": len(data)}


def parse_size(s: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in s.lower().split("x"))
        if w <= 0 or h <= 0:
            raise ValueError
        return w, h
    except ValueError:
        raise argparse.ArgumentTypeError("expected WIDTHxHEIGHT, e.g. 500x375")


def summarize(infos: list[dict], bad: list[dict]) -> dict:
    out = {}
    for split in ("train", "val", "all"):
        sel = [i for i in infos if split == "all" or i["split"] == split]
        if not sel:
            continue
        sizes = [i["bytes"] for i in sel]
        px = [i["w"] * i["h"] for i in sel]
        out[split] = {
            "images": len(sel),
            "bad_files": sum(1 for b in bad if split == "all" or b["split"] == split),
            "grayscale": sum(i["mode"] == "L" for i in sel),
            "cmyk": sum(i["mode"] == "CMYK" for i in sel),
            "progressive": sum(i["progressive"] for i in sel),
            "subsampling_444": sum(i["subsampling"] == "4:4:4" for i in sel),
            "subsampling_422": sum(i["subsampling"] == "4:2:2" for i in sel),
            "small_lt_200px": sum(min(i["w"], i["h"]) < 200 for i in sel),
            "large_ge_1000px": sum(max(i["w"], i["h"]) >= 1000 for i in sel),
            "mean_width": round(statistics.fmean(i["w"] for i in sel), 1),
            "mean_height": round(statistics.fmean(i["h"] for i in sel), 1),
            "mean_bytes": round(statistics.fmean(sizes)),
            "median_bytes": round(statistics.median(sizes)),
            "min_bytes": min(sizes),
            "max_bytes": max(sizes),
            "bytes_per_pixel": round(sum(sizes) / sum(px), 4),
            # What the mean density means for a 500x375 image.
            "bytes_at_500x375": round(sum(sizes) / sum(px) * 500 * 375),
        }
    return out


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Show the module docstring as written, and the defaults."""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("out", help="output root (OUT); train/ and val/ are created under it")
    p.add_argument("--classes", type=int, default=10, help="number of classes")
    p.add_argument("--train-per-class", type=int, default=20, help="train images per class")
    p.add_argument("--val-per-class", type=int, default=5, help="val images per class")
    p.add_argument("--seed", type=int, default=0, help="random seed (output is deterministic for a seed)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (1-100)")
    p.add_argument("--bad", type=int, default=0, metavar="N",
                   help="add N bad files per split (truncated JPEG, zero-byte, PNG named .JPEG, random bytes; cycling)")
    p.add_argument("--val-labels", action="store_true",
                   help="flat OUT/val/*.JPEG plus OUT/val_labels.txt ('<file> <class>' per line) instead of val/<class>/")
    p.add_argument("--gray-frac", type=float, default=0.03, help="fraction of grayscale (mode L) images")
    p.add_argument("--cmyk-frac", type=float, default=0.02, help="fraction of CMYK (Adobe) images")
    p.add_argument("--progressive-frac", type=float, default=0.15, help="fraction of progressive JPEGs")
    p.add_argument("--fixed-size", type=parse_size, default=None, metavar="WxH",
                   help="make every image this size (e.g. 500x375) instead of the varied sizes")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="worker processes (does not change the output)")
    p.add_argument("--overwrite", action="store_true",
                   help="delete an existing OUT/train, OUT/val, OUT/val_labels.txt and OUT/bad_files.txt first")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)

    if args.classes < 1 or args.train_per_class < 0 or args.val_per_class < 0 or args.bad < 0:
        p.error("--classes must be >= 1 and the per-class counts and --bad >= 0")
    if not 1 <= args.quality <= 100:
        p.error("--quality must be in 1..100")
    if args.gray_frac < 0 or args.cmyk_frac < 0 or args.gray_frac + args.cmyk_frac > 1:
        p.error("--gray-frac and --cmyk-frac must be >= 0 and sum to at most 1")

    out = args.out
    owned = [os.path.join(out, n) for n in ("train", "val", "val_labels.txt", "bad_files.txt")]
    existing = [q for q in owned if os.path.lexists(q)]
    if existing:
        if not args.overwrite:
            p.error("%s already exists; pass --overwrite to replace it" % existing[0])
        for q in existing:
            if os.path.isdir(q) and not os.path.islink(q):
                shutil.rmtree(q)
            else:
                os.remove(q)

    jobs, bad_jobs, val_labels = plan(args)
    for rel in {os.path.dirname(j[3]) for j in jobs} | {os.path.dirname(b[3]) for b in bad_jobs} | {"train", "val"}:
        os.makedirs(os.path.join(out, rel), exist_ok=True)

    t0 = time.perf_counter()
    image_jobs = [(s, c, k, rel, out, args, args.fixed_size) for (s, c, k, rel) in jobs]
    badj = [(s, b, kind, rel, out, args) for (s, b, kind, rel, c) in bad_jobs]
    if args.jobs > 1 and len(image_jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("fork" if hasattr(os, "fork") else "spawn").Pool(args.jobs) as pool:
            infos = pool.map(run_image_job, image_jobs, chunksize=max(1, len(image_jobs) // (args.jobs * 8)))
            bad = pool.map(run_bad_job, badj)
    else:
        infos = [run_image_job(j) for j in image_jobs]
        bad = [run_bad_job(j) for j in badj]
    elapsed = time.perf_counter() - t0

    if args.val_labels:
        with open(os.path.join(out, "val_labels.txt"), "w") as f:
            for name in sorted(val_labels):
                f.write("%s %s\n" % (name, val_labels[name]))
    if bad:
        with open(os.path.join(out, "bad_files.txt"), "w") as f:
            for b in bad:
                f.write("%s %s\n" % (b["path"], b["kind"]))

    summary = {
        "out": os.path.abspath(out),
        "classes": args.classes,
        "seed": args.seed,
        "quality": args.quality,
        "layout": "val_labels" if args.val_labels else "class_folders",
        "seconds": round(elapsed, 2),
        "splits": summarize(infos, bad),
        "bad": bad,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print("wrote %s (%d classes, seed %d, quality %d, %s layout) in %.1fs"
          % (summary["out"], args.classes, args.seed, args.quality, summary["layout"], elapsed))
    for split, s in summary["splits"].items():
        print("  %-5s %5d images (+%d bad): %d gray, %d CMYK, %d progressive, %d 4:4:4, %d 4:2:2, "
              "%d small, %d large; mean %.0fx%.0f; bytes mean %d median %d min %d max %d "
              "(%.3f B/px = %d B at 500x375)"
              % (split, s["images"], s["bad_files"], s["grayscale"], s["cmyk"], s["progressive"],
                 s["subsampling_444"], s["subsampling_422"], s["small_lt_200px"], s["large_ge_1000px"],
                 s["mean_width"], s["mean_height"], s["mean_bytes"], s["median_bytes"], s["min_bytes"],
                 s["max_bytes"], s["bytes_per_pixel"], s["bytes_at_500x375"]))
    for b in bad:
        print("  bad: %s (%s, %d bytes)" % (b["path"], b["kind"], b["bytes"]))
    if args.val_labels:
        print("  val labels: %s" % os.path.join(out, "val_labels.txt"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
