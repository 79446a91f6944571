#!/usr/bin/env python3
"""Writes internal/train/testdata/mix_golden.json: what torchvision's v2.MixUp and v2.CutMix do to a batch
and what PyTorch's cross_entropy with label_smoothing gives for it, for internal/train's mixer and the
soft-target loss to match.

    py=$(scripts/setup-torch.sh) && "$py" scripts/mix_golden.py

Each case draws a batch of images (N, C, H, W), labels and logits from a fixed seed, then applies
torchvision's transform (none, MixUp or CutMix) under torch.manual_seed(SEED). The transform's random
parameters (lam, and for CutMix the box centre r_x, r_y) are recorded by replaying the same draws under
the same seed, so the Go side can apply its own mixing with them: it must give the same images and the
same mixed labels. The loss is F.cross_entropy(logits, mixed labels, label_smoothing=EPS) (for the
unmixed case, the integer labels), with its gradient; the targets it is taken against,
t * (1 - EPS) + EPS / K, are recorded as PyTorch computes them. Values are float32 in the JSON.
"""

import json
import math
import os

import torch
import torch.nn.functional as F
import torchvision
from torchvision.transforms import v2

SEED = 20261207
CASES = [
    # name, kind, alpha, eps, N, C, H, W, K
    ("smoothing", "none", 0.0, 0.1, 4, 3, 5, 6, 7),
    ("mixup", "mixup", 0.2, 0.1, 5, 2, 4, 5, 6),
    ("mixup_no_smoothing", "mixup", 1.0, 0.0, 3, 3, 3, 3, 4),
    ("cutmix", "cutmix", 1.0, 0.1, 4, 2, 9, 11, 5),
    ("cutmix_small_lam", "cutmix", 0.3, 0.0, 3, 1, 8, 8, 3),
]


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def main():
    out = {"torch": torch.__version__, "torchvision": torchvision.__version__, "cases": []}
    for i, (name, kind, alpha, eps, n, c, h, w, k) in enumerate(CASES):
        g = torch.Generator().manual_seed(SEED + i)
        x = torch.rand(n, c, h, w, generator=g) * 4 - 2
        labels = torch.randint(k, (n,), generator=g)
        logits = torch.randn(n, k, generator=g) * 2
        case = {"name": name, "kind": kind, "eps": eps, "shape": [n, c, h, w], "classes": k,
                "images": flat(x), "labels": labels.tolist(), "logits": flat(logits)}
        if kind == "none":
            mixed_x, target = x, labels
            soft = F.one_hot(labels, k).float()
            case["lam"] = 1.0
        else:
            # The transform's own draws, replayed: Beta(alpha, alpha), then CutMix's r_x and r_y.
            torch.manual_seed(SEED)
            dist = torch.distributions.Beta(torch.tensor([alpha]), torch.tensor([alpha]))
            case["lam"] = float(dist.sample(()))
            if kind == "cutmix":
                case["rx"] = int(torch.randint(w, size=(1,)))
                case["ry"] = int(torch.randint(h, size=(1,)))
            t = v2.MixUp(alpha=alpha, num_classes=k) if kind == "mixup" else v2.CutMix(alpha=alpha, num_classes=k)
            torch.manual_seed(SEED)
            mixed_x, target = t(x.clone(), labels.clone())
            soft = target
        lg = logits.clone().requires_grad_(True)
        loss = F.cross_entropy(lg, target, label_smoothing=eps)
        loss.backward()
        case["mixed_images"] = flat(mixed_x)
        case["targets"] = flat(soft * (1 - eps) + eps / k)
        case["loss"] = float(loss.detach())
        case["grad"] = flat(lg.grad)
        out["cases"].append(case)
    path = os.path.join(os.path.dirname(__file__), "..", "internal", "train", "testdata", "mix_golden.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
