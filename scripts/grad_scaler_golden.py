#!/usr/bin/env python3
"""Writes internal/train/testdata/grad_scaler_golden.json: what torch.amp.GradScaler does on fixed patterns
of overflowing and finite steps, for internal/train's loss scaler to match bit for bit.

    py=$(scripts/setup-torch.sh) && "$py" scripts/grad_scaler_golden.py

Each case runs PyTorch's own GradScaler (device "cpu", growth_factor 2, backoff_factor 0.5) around an SGD
step of a one-parameter model. On a step marked overflowing, an infinity is written into the scaled
gradient after backward(), as an fp16 overflow would leave it; no other step overflows. After each step the file records the scale
(get_scale(), a float32 written exactly as its bit pattern and as a number), the growth tracker, and
whether the optimizer step ran (the parameter moved). The cases cover backing off and growing, growth
stopped below float32's infinity (2**127 doubled), and a long run of overflows into subnormal scales.
"""

import json
import os
import struct

import torch

CASES = [
    # name, init_scale, growth_interval, pattern (1 = the step's gradients overflow)
    ("backoff_and_growth", 65536.0, 3, [1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0]),
    ("growth_stops_below_inf", 2.0**126, 2, [0, 0, 0, 0, 0, 0, 1, 0, 0]),
    ("overflow_first_steps", 2.0**100, 2000, [1] * 12 + [0] * 5),
    ("into_subnormal", 65536.0, 2000, [1] * 160),
]


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def run(init_scale, growth_interval, pattern):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.tensor([0.5]))
    opt = torch.optim.SGD([w], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_factor=2.0, backoff_factor=0.5,
                                  growth_interval=growth_interval)
    steps = []
    for overflow in pattern:
        opt.zero_grad()
        loss = (w * 2.0**-10).sum()  # a gradient that no scale above overflows by itself
        scaler.scale(loss).backward()
        if overflow:
            w.grad.fill_(float("inf"))
        before = w.detach().clone()
        scaler.step(opt)
        scaler.update()
        scale = scaler.get_scale()
        steps.append({
            "overflow": bool(overflow),
            "stepped": not torch.equal(before, w.detach()),
            "scale": scale,
            "scale_bits": f32_bits(scale),
            "growth_tracker": int(scaler._get_growth_tracker()),
        })
    return steps


def main():
    out = {"torch_version": torch.__version__, "growth_factor": 2.0, "backoff_factor": 0.5, "cases": []}
    for name, init_scale, interval, pattern in CASES:
        out["cases"].append({"name": name, "init_scale": init_scale, "init_scale_bits": f32_bits(init_scale),
                             "growth_interval": interval, "steps": run(init_scale, interval, pattern)})
    path = os.path.join(os.path.dirname(__file__), "..", "internal", "train", "testdata", "grad_scaler_golden.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
