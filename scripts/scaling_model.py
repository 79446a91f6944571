#!/usr/bin/env python3
"""The data-parallel scaling model of docs/benchmarks.md: for each ImageNet model of the zoo, the fp32
gradient bytes one step all-reduces, the ring all-reduce time over NVLink inside a node and over
InfiniBand between nodes, the compute time of a step on one H100, and the scaling efficiency that follows
at 8, 64 and 512 GPUs, with and without the all-reduce overlapping the backward pass.

    go run ./cmd/resnet models --json | python3 scripts/scaling_model.py
    go run ./cmd/resnet models --json | python3 scripts/scaling_model.py --basis tf32
    go run ./cmd/resnet models --json | python3 scripts/scaling_model.py --check docs/benchmarks.md

It prints Markdown, the block between the markers in docs/benchmarks.md; --check says whether that file
holds exactly what it would print. Plain Python, no third-party packages.

The model (each number's source is in docs/benchmarks.md, section "Data-parallel scaling model"):

    bytes     = 4 * parameters                                   (fp32 gradients)
    T_ar(n)   = 2 (n - 1) / n * bytes / B                        (ring all-reduce, bandwidth term only)
                B = NVLink bus bandwidth for n <= 8 (one node), the per-GPU InfiniBand rate above
    T_c       = per-GPU batch / images per second of one GPU     (compute time of one step)
    E         = T_c / (T_c + T_ar)                               (no overlap)
    E_overlap = T_c / (T_c + max(T_ar - 2/3 T_c, T_ar * min(1, 25 MB / bytes)))
                                                                 (all-reduce in 25 MB buckets during the
                                                                 backward pass; the last one exposed)
"""

import argparse
import json
import sys

GPUS_PER_NODE = 8

# Bus bandwidths in bytes/s, as NCCL's tests define bus bandwidth (algorithm bandwidth times 2 (n-1)/n
# for an all-reduce), so that T_ar = 2 (n-1)/n * bytes / B.
FABRICS = {
    # A ring over NVLink 4 inside an 8-GPU H100 SXM node: 450 GB/s per direction on the wire, about
    # 370 GB/s after protocol overhead (NCCL's maintainers, NVIDIA/nccl-tests issue 212).
    "NVLink": 370e9,
    # One 400 Gb/s NDR port per GPU (line rate; NCCL's maintainers expect 46-48 GB/s measured per NIC,
    # NVIDIA/nccl-tests issue 290).
    "NDR": 50e9,
    # One 200 Gb/s HDR port per GPU (line rate).
    "HDR": 25e9,
}

# The job sizes of the tables, with the fabric each all-reduce is bound by: inside one node of
# GPUS_PER_NODE GPUs, NVLink; beyond, each GPU's InfiniBand port.
SETUPS = (("8", 8, "NVLink"), ("64 NDR", 64, "NDR"), ("512 NDR", 512, "NDR"), ("64 HDR", 64, "HDR"), ("512 HDR", 512, "HDR"))

# Goyal et al. 2017 train with 32 images per GPU at every scale they report (up to 256 GPUs, batch 8k).
PER_GPU_BATCH = 32

# Images per second of one H100 SXM training resnet50 (PyTorch, NVIDIA's example scripts;
# ../shared/reference/FACTS.md, from lambdal/deeplearning-benchmark), and the dense tensor-core peak of
# that precision (NVIDIA's H100 SXM datasheet: 989 TFLOP/s BF16/FP16, 495 TF32).
BASES = {
    "amp": {"img_s": 2793.0, "peak": 989e12, "label": "mixed precision (AMP)"},
    "tf32": {"img_s": 1895.0, "peak": 495e12, "label": "TF32"},
}
MEASURED_MODEL = "resnet50"

# Training FLOPs per image: forward 2 x MACs, backward twice that (the convention of docs/benchmarks.md).
FLOPS_PER_MAC = 6
# The backward pass's share of a step's compute, the window an overlapped all-reduce can hide in.
BACKWARD_SHARE = 2.0 / 3.0
# An overlapped all-reduce goes in buckets as their gradients are ready (PyTorch DDP's bucket_cap_mb, 25 MB
# by default); the last bucket is ready only when the backward pass ends, so its reduction is never hidden.
BUCKET_BYTES = 25e6

BEGIN = "<!-- scaling_model.py begin: generated, do not edit -->"
END = "<!-- scaling_model.py end -->"


def models_of(zoo):
    """The ImageNet models, without the plain (shortcut-free) baselines, which match their ResNets' sizes."""
    return [m for m in zoo if m["family"] == "imagenet" and not m["name"].startswith("plain")]


def allreduce_seconds(nbytes, n, bus):
    return 2.0 * (n - 1) / n * nbytes / bus


def efficiency(t_compute, t_reduce, nbytes, overlap):
    exposed = t_reduce
    if overlap:
        last_bucket = t_reduce * min(1.0, BUCKET_BYTES / nbytes)
        exposed = max(t_reduce - BACKWARD_SHARE * t_compute, last_bucket)
    return t_compute / (t_compute + exposed)


def rows(zoo, basis, per_gpu_batch):
    base = BASES[basis]
    ref = next((m for m in zoo if m["name"] == MEASURED_MODEL), None)
    if ref is None:
        sys.exit(f"scaling_model.py: the model list has no {MEASURED_MODEL}, whose measured rate sets the others'")
    fraction = base["img_s"] * FLOPS_PER_MAC * ref["macs"] / base["peak"]
    out = []
    for m in models_of(zoo):
        measured = m["name"] == MEASURED_MODEL
        img_s = base["img_s"] if measured else fraction * base["peak"] / (FLOPS_PER_MAC * m["macs"])
        nbytes = 4 * m["params"]
        t_c = per_gpu_batch / img_s
        reduce = {name: allreduce_seconds(nbytes, n, FABRICS[f]) for name, n, f in SETUPS}
        out.append({"model": m, "measured": measured, "img_s": img_s, "bytes": nbytes, "t_c": t_c, "reduce": reduce})
    return out, fraction


def pct(x):
    return f"{100 * x:.1f}%"


def render(zoo, basis, per_gpu_batch):
    table, fraction = rows(zoo, basis, per_gpu_batch)
    base = BASES[basis]
    lines = [
        BEGIN,
        "",
        f"Step time basis: {base['label']}, {per_gpu_batch} images per GPU; resnet50 measured "
        f"({base['img_s']:,.0f} img/s), the others estimated at the fraction of the H100's dense peak "
        f"({base['peak'] / 1e12:,.0f} TFLOP/s) that resnet50 reaches: {pct(fraction)} "
        f"({FLOPS_PER_MAC} x MACs per image).",
        "",
        "| model | params | gradient MB (fp32) | img/s per GPU | step compute ms | all-reduce ms, 8 (NVLink) "
        "| 64 / 512 (NDR) | 64 / 512 (HDR) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table:
        m, red = r["model"], r["reduce"]
        how = "measured" if r["measured"] else "est."
        lines.append(
            f"| {m['name']} | {m['params']:,} | {r['bytes'] / 1e6:.1f} | {r['img_s']:,.0f} ({how}) "
            f"| {1e3 * r['t_c']:.1f} | {1e3 * red['8']:.2f} "
            f"| {1e3 * red['64 NDR']:.2f} / {1e3 * red['512 NDR']:.2f} "
            f"| {1e3 * red['64 HDR']:.2f} / {1e3 * red['512 HDR']:.2f} |"
        )
    lines += [
        "",
        "Scaling efficiency (each GPU's throughput against one GPU alone), without / with overlap:",
        "",
        "| model | 8 GPUs (NVLink) | 64 (NDR) | 512 (NDR) | 64 (HDR) | 512 (HDR) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in table:
        cells = []
        for name, _, _ in SETUPS:
            t = r["reduce"][name]
            no, yes = (efficiency(r["t_c"], t, r["bytes"], overlap) for overlap in (False, True))
            cells.append(f"{pct(no)} / {pct(yes)}")
        lines.append(f"| {r['model']['name']} | " + " | ".join(cells) + " |")
    lines += ["", END]
    return "\n".join(lines) + "\n"


def check(path, text):
    with open(path, encoding="utf-8") as f:
        doc = f.read()
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < 0:
        sys.exit(f"scaling_model.py: {path} has no block between {BEGIN!r} and {END!r}")
    if doc[start : end + len(END) + 1] != text:
        sys.exit(f"scaling_model.py: the block in {path} differs from this output; regenerate it")
    print(f"{path}: up to date")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="?", default="-", help="output of `resnet models --json` (default: stdin)")
    p.add_argument("--basis", choices=sorted(BASES), default="amp", help="the precision of the measured step time")
    p.add_argument("--per-gpu-batch", type=int, default=PER_GPU_BATCH, help="images per GPU and step (default %(default)s)")
    p.add_argument("--check", metavar="FILE", help="compare with the generated block in FILE instead of printing")
    args = p.parse_args()
    if args.models == "-":
        zoo = json.load(sys.stdin)
    else:
        with open(args.models, encoding="utf-8") as f:
            zoo = json.load(f)
    if args.per_gpu_batch < 1:
        p.error(f"--per-gpu-batch must be at least 1 (got {args.per_gpu_batch})")
    text = render(zoo, args.basis, args.per_gpu_batch)
    if args.check:
        check(args.check, text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
