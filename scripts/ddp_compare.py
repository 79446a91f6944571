#!/usr/bin/env python3
"""Compares a data-parallel run with a one-GPU run of the same global batch (scripts/gpu-test.sh --ddp).

    python3 scripts/ddp_compare.py DDP_RUN SINGLE_RUN [--rtol 1e-3] [--loss-rtol 0.02] [--json OUT]

Both are run folders of `resnet train`. With train.batch_size the global batch, N ranks each taking their
slice of it and a one-GPU run with train.accumulate_steps = N compute the same gradient (each micro-batch is
one rank's slice, its BN layers normalised with that slice's statistics), up to the order the sums are
taken in. So their newest checkpoints must be at the same step and hold the same weights and momentum
buffers to within float32 rounding: the check is max |a - b| <= rtol * max |b| per tensor. BN running
statistics are left out (under data parallelism each rank keeps its own, from its slice; with accumulation
they see every micro-batch), and with them the test metrics, which use them; the last training loss must
agree to loss-rtol. Only the standard library is used: safetensors is read by hand (F32 tensors).

Prints one line per check and, with --json, writes them; exits 0 when all pass, 1 when one fails, 2 when a
run cannot be read.
"""

import argparse
import array
import glob
import json
import os
import struct
import sys

# The tensors the check leaves out: BN running statistics (see above) and their step counters.
SKIPPED_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


class RunError(Exception):
    pass


def newest_checkpoint(run):
    paths = sorted(glob.glob(os.path.join(run, "checkpoints", "step-*.safetensors")))
    if not paths:
        raise RunError(f"{run}: no checkpoints/step-*.safetensors")
    return paths[-1]


def read_f32_tensors(path):
    """The F32 tensors of a safetensors file, by name, as arrays of floats."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise RunError(f"{path}: shorter than a safetensors header")
    (header_len,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + header_len])
    except ValueError as e:
        raise RunError(f"{path}: header is not JSON: {e}") from e
    body = data[8 + header_len :]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__" or entry.get("dtype") != "F32":
            continue
        begin, end = entry["data_offsets"]
        values = array.array("f")
        values.frombytes(body[begin:end])
        if sys.byteorder != "little":
            values.byteswap()
        out[name] = values
    return out


def last_metrics(run):
    path = os.path.join(run, "metrics.jsonl")
    try:
        with open(path) as f:
            lines = [line for line in f if line.strip()]
    except OSError as e:
        raise RunError(f"{path}: {e.strerror}") from e
    if not lines:
        raise RunError(f"{path}: empty")
    return json.loads(lines[-1])


def compare(ddp, single, rtol, loss_rtol):
    """The checks, as dicts with name, ok and detail."""
    checks = []
    a_path, b_path = newest_checkpoint(ddp), newest_checkpoint(single)
    a_step, b_step = os.path.basename(a_path), os.path.basename(b_path)
    checks.append({"name": "checkpoint step", "ok": a_step == b_step, "detail": f"{a_step} and {b_step}"})

    a, b = read_f32_tensors(a_path), read_f32_tensors(b_path)
    names = sorted(n for n in b if not n.endswith(SKIPPED_SUFFIXES))
    missing = sorted(set(names) - set(a))
    worst_name, worst = "", 0.0
    bad = []
    for name in names:
        if name not in a or len(a[name]) != len(b[name]):
            continue
        diff = max((abs(x - y) for x, y in zip(a[name], b[name])), default=0.0)
        scale = max((abs(y) for y in b[name]), default=0.0)
        rel = diff / scale if scale > 0 else diff
        if rel > worst or not worst_name:
            worst_name, worst = name, rel
        if rel > rtol:
            bad.append(f"{name} {rel:.3g}")
    ok = not missing and not bad and bool(names)
    detail = f"{len(names)} tensors, worst {worst_name} at {worst:.3g} of its largest value (tolerance {rtol:g})"
    if missing:
        detail += f"; missing from the data-parallel run: {', '.join(missing[:5])}"
    if bad:
        detail += f"; over: {', '.join(bad[:5])}"
    checks.append({"name": "weights and momentum", "ok": ok, "detail": detail, "worst_relative": worst})

    ma, mb = last_metrics(ddp), last_metrics(single)
    checks.append(
        {"name": "optimizer steps", "ok": ma.get("step") == mb.get("step"), "detail": f"{ma.get('step')} and {mb.get('step')}"}
    )
    la, lb = ma.get("train_loss"), mb.get("train_loss")
    if isinstance(la, (int, float)) and isinstance(lb, (int, float)):
        rel = abs(la - lb) / max(abs(lb), 1e-12)
        checks.append(
            {
                "name": "training loss",
                "ok": rel <= loss_rtol,
                "detail": f"{la:.6g} and {lb:.6g}, {rel:.3g} apart (tolerance {loss_rtol:g})",
            }
        )
    else:
        checks.append({"name": "training loss", "ok": False, "detail": f"not finite: {la} and {lb}"})
    # Reported, not checked: they depend on the BN running statistics.
    checks.append(
        {
            "name": "test error (reported)",
            "ok": True,
            "detail": f"{ma.get('test_err')} and {mb.get('test_err')}",
        }
    )
    return checks


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ddp", help="the data-parallel run folder")
    p.add_argument("single", help="the one-GPU run folder (train.accumulate_steps = the world size)")
    p.add_argument("--rtol", type=float, default=1e-3, help="tolerance of the weights, relative to each tensor's largest value")
    p.add_argument("--loss-rtol", type=float, default=0.02, help="tolerance of the last training loss, relative")
    p.add_argument("--json", help="write the checks here")
    args = p.parse_args()
    try:
        checks = compare(args.ddp, args.single, args.rtol, args.loss_rtol)
    except (RunError, OSError, KeyError, ValueError) as e:
        print(f"ddp_compare: {e}", file=sys.stderr)
        return 2
    for c in checks:
        print(f"{'PASS' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}")
    ok = all(c["ok"] for c in checks)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ok": ok, "ddp": args.ddp, "single": args.single, "checks": checks}, f, indent=2)
            f.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
