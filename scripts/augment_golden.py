#!/usr/bin/env python3
"""Writes internal/vision/testdata/augment_golden.json: what torchvision's automatic augmentation ops and
random erasing do to small fixed images, for internal/vision's ops to match.

    py=$(scripts/setup-torch.sh) && "$py" scripts/augment_golden.py [--out FILE] [--size HxW]

Each op of the RandAugment / TrivialAugmentWide / AutoAugment op set is applied with torchvision's v2
functional API, as v2's _AutoAugmentBase applies it (_apply_image_or_video_transform: nearest sampling,
fill None, i.e. black), to uint8 CHW tensors, at magnitudes taken from the policies' own bins (both signs
where the op is signed). The magnitude bins, the learned AutoAugment sub-policies and the uniform op lists
are recorded too, so that the Go tables are checked against torchvision's. Random erasing is checked on a
float image with given boxes. Images are base64 of the raw CHW bytes.

--size replaces the main image (13x11) by a larger one, and --all-bins adds every op at every bin of every
space, for a one-off check of the float32 paths at a realistic size (e.g. --size 224x224 --all-bins
--out /tmp/augment_224.json, then RESNET_AUGMENT_GOLDEN=/tmp/augment_224.json go test ./internal/vision);
keep the checked-in file at the default size.
"""

import argparse
import base64
import json
import os

import numpy as np
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import AutoAugmentPolicy
from torchvision.transforms.v2 import functional as F

SEED = 20260309


def make_image(c, h, w, gen, constant_channel=None):
    """A test picture with different ranges per channel, so autocontrast stretches each differently."""
    lo = [0, 30, 60]
    hi = [256, 201, 141]
    img = torch.empty(c, h, w, dtype=torch.uint8)
    for ch in range(c):
        img[ch] = torch.randint(lo[ch], hi[ch], (h, w), generator=gen, dtype=torch.uint8)
    if constant_channel is not None:
        img[constant_channel] = 77
    return img


def f32(v):
    """v as the shortest decimal that reads back as the same float32 (Go decodes it into a float32)."""
    return float(str(np.float32(v)))


def b64(t):
    return base64.b64encode(t.contiguous().numpy().tobytes()).decode()


def apply_op(img, name, magnitude):
    """torchvision's own dispatch, so the golden values follow any change there."""
    aug = v2.RandAugment()
    return aug._apply_image_or_video_transform(img, name, magnitude, interpolation=aug.interpolation, fill=aug._fill)


def space_tables(space, nbins, h, w):
    out = {}
    for name, (fn, signed) in space.items():
        mags = fn(nbins, h, w)
        out[name] = {"signed": signed, "values": None if mags is None else [f32(v) for v in mags]}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "internal", "vision", "testdata", "augment_golden.json"))
    ap.add_argument("--size", default="11x13", help="HxW of the main image")
    ap.add_argument("--all-bins", action="store_true", help="every op of the main image at every bin of every space")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))

    gen = torch.Generator().manual_seed(SEED)
    images = {
        "main": make_image(3, h, w, gen),
        "square": make_image(3, 8, 8, gen, constant_channel=2),
        # Equalize changes nothing below 256 pixels that are not at a channel's top level.
        "equalize": make_image(3, 23, 29, gen, constant_channel=1),
        "gray": make_image(1, 9, 7, gen),
    }

    ra, ta = v2.RandAugment(), v2.TrivialAugmentWide()
    # The magnitude spaces: RandAugment's (31 bins), AutoAugment's (the same ops and ranges, 10 bins) and
    # TrivialAugmentWide's (31 bins).
    raw = {
        "standard31": (v2.RandAugment._AUGMENTATION_SPACE, 31),
        "standard10": (v2.AutoAugment._AUGMENTATION_SPACE, 10),
        "wide31": (v2.TrivialAugmentWide._AUGMENTATION_SPACE, 31),
    }
    spaces = {k: space_tables(table, nbins, h, w) for k, (table, nbins) in raw.items()}
    std31, std10, wide31 = "standard31", "standard10", "wide31"

    def mags(op, picks):
        """Magnitudes of op at (space, bin) picks, as the policies pass them, with both signs where the op
        is signed."""
        out = []
        for space, i in picks:
            table, nbins = raw[space]
            fn, signed = table[op]
            m = float(fn(nbins, h, w)[i])
            out.append(m)
            if signed and m != 0:
                out.append(-m)
        return out

    cases = []

    def add(image, op, magnitudes):
        for m in magnitudes:
            out = apply_op(images[image], op, m)
            assert float(np.float32(m)) == m, f"magnitude {m} of {op} is not a float32"
            cases.append({"image": image, "op": op, "magnitude": f32(m), "out": b64(out)})

    if args.all_bins:
        for space, (table, nbins) in raw.items():
            for op in table:
                add("main", op, mags(op, [(space, i) for i in range(nbins)]) if table[op][0](nbins, h, w) is not None else [0.0])
    add("main", "Identity", [0.0])
    for op in ("ShearX", "ShearY"):
        add("main", op, mags(op, [(std31, 9), (std31, 30), (std10, 5), (wide31, 30)]))
    for op in ("TranslateX", "TranslateY"):
        add("main", op, mags(op, [(std31, 9), (std31, 30), (wide31, 5), (wide31, 30)]))
    add("main", "Rotate", mags("Rotate", [(std31, 9), (std31, 30), (wide31, 10), (wide31, 20), (wide31, 30)]))
    add("square", "Rotate", [90.0, -90.0, 180.0, 30.0, -135.0])
    for op in ("Brightness", "Color", "Contrast", "Sharpness"):
        add("main", op, mags(op, [(std31, 9), (std31, 30), (std10, 7), (wide31, 30)]))
    add("square", "Contrast", [0.5, -0.75])
    add("square", "Sharpness", [0.875])
    add("main", "Posterize", [8.0, 7.0, 5.0, 4.0, 2.0, 0.0])
    add("main", "Solarize", mags("Solarize", [(std31, i) for i in (0, 16, 18, 24, 30)] + [(std10, 5)]))
    for image in ("main", "square"):
        for op in ("AutoContrast", "Equalize", "Invert"):
            add(image, op, [0.0])
    for op in ("AutoContrast", "Equalize"):
        add("equalize", op, [0.0])
    # One-channel images: Color leaves them alone, Contrast blends with their plain mean.
    for op, m in (("Color", 0.5), ("Contrast", 0.5), ("Contrast", -0.75), ("Sharpness", 0.5), ("AutoContrast", 0.0),
                  ("ShearX", 0.25), ("Rotate", 30.0), ("Solarize", 0.5), ("Posterize", 3.0)):
        add("gray", op, [m])

    erasing = []
    ramp = torch.arange(1, 3 * h * w + 1, dtype=torch.float32).reshape(3, h, w)
    for i, j, eh, ew in [(2, 3, 4, 5), (0, 0, h - 1, w - 1), (h - 1, w - 1, 1, 1), (4, 4, 0, 3)]:
        out = F.erase(ramp, i, j, eh, ew, v=torch.tensor([0.0])[:, None, None])
        erasing.append({"top": i, "left": j, "height": eh, "width": ew, "out": [int(v) for v in out.reshape(-1).tolist()]})

    aa = {}
    for key, policy in (("imagenet", AutoAugmentPolicy.IMAGENET), ("cifar10", AutoAugmentPolicy.CIFAR10)):
        aa[key] = [[[op, p, b] for op, p, b in sub] for sub in v2.AutoAugment(policy)._policies]

    doc = {
        "about": "written by scripts/augment_golden.py with torch " + torch.__version__ + ", torchvision " +
                 __import__("torchvision").__version__ + "; images are base64 CHW uint8",
        "images": {k: {"c": v.shape[0], "h": v.shape[1], "w": v.shape[2], "pix": b64(v)} for k, v in images.items()},
        "spaces": spaces,
        "uniform_ops": {"randaugment": list(ra._AUGMENTATION_SPACE), "trivial": list(ta._AUGMENTATION_SPACE)},
        "autoaugment": aa,
        "cases": cases,
        "erasing": {"c": 3, "h": h, "w": w, "cases": erasing},
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"{args.out}: {len(cases)} op cases, {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
