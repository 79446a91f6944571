#!/usr/bin/env python3
"""PyTorch peer of `resnet bench`: training-step throughput (forward + backward + SGD update) on synthetic
input, for the same models, with the same flags and the same JSON field names, so the two can be run back to
back and compared (scripts/bench-cpu.sh does that).

    py=$(scripts/setup-torch.sh)
    "$py" scripts/bench_pytorch.py --model cifar_resnet20 --batch 128 --device cpu --json
    "$py" scripts/bench_pytorch.py --model resnet50 --batch 256 --device cuda --precision bf16 --channels-last

Models: torchvision's resnet18..152 (224x224, 1000 classes) and plain18..152 (the same nets with the
shortcuts removed); torchvision's ResNeXt, Wide ResNet and DenseNet, and timm's SE, pre-activation and
Inception-ResNet-v2 (299x299) members under their zoo names; cifar_resnetN and cifar_plainN for N = 6n+2 (He et al. 2015, section 4.2: a 3x3 stem of
16 channels, three stages of n basic blocks of widths 16/32/64, option A shortcuts: identity, stride-2
subsampling and zero-padded channels split evenly on both sides, as the Go model does). The step is SGD with
momentum 0.9 and weight decay 1e-4 on softmax cross-entropy, like `resnet bench`.

On the GPU, fp32 is strict fp32 unless --tf32 is given, as in `resnet bench` (whose RESNET_CUDA_TF32=1 is
--tf32 here); PyTorch's own default lets cuDNN convolutions use TF32 tensor cores.
"""

import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# Parameter counts the models must have (docs/reference-counts.md; also pinned by the Go zoo tests).
EXPECTED_PARAMS = {
    "cifar_resnet20": 269_722,
    "cifar_resnet32": 464_154,
    "cifar_resnet44": 658_586,
    "cifar_resnet56": 853_018,
    "cifar_resnet110": 1_727_962,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "plain18": 11_515_688,
    "plain34": 21_623_848,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "densenet121": 7_978_856,
    "densenet161": 28_681_000,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
    "seresnet50": 28_088_024,
    "seresnet101": 49_326_872,
    "seresnet152": 66_821_848,
    "seresnext50_32x4d": 27_559_896,
    "resnetv2_50": 25_549_352,
    "resnetv2_101": 44_541_480,
    "inception_resnet_v2": 55_843_464,
}

# The wider family: torchvision's classes of the same names.
TORCHVISION_WIDER = ("resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
                     "densenet121", "densenet161", "densenet169", "densenet201")
# The members whose reference is timm (timm pinned by scripts/setup-torch.sh), with their input sides.
TIMM_MODELS = {"seresnet50": 224, "seresnet101": 224, "seresnet152": 224, "seresnext50_32x4d": 224,
               "resnetv2_50": 224, "resnetv2_101": 224, "inception_resnet_v2": 299}


class CIFARBlock(nn.Module):
    """Basic block of the CIFAR ResNet; the option-A shortcut needs no parameters."""

    def __init__(self, cin, cout, stride, residual):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.residual = residual
        self.stride = stride
        self.pad = (cout - cin) // 2

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            z = x
            if self.stride != 1:
                z = z[:, :, :: self.stride, :: self.stride]
            if self.pad:
                z = F.pad(z, (0, 0, 0, 0, self.pad, self.pad))
            out = out + z
        return F.relu(out)


class CIFARResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs (He et al. 2015, section 4.2)."""

    def __init__(self, depth, residual=True, num_classes=10):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR depth must be 6n+2 (got {depth})")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for i, width in enumerate((16, 32, 64)):
            blocks = []
            for b in range(n):
                stride = 2 if (i > 0 and b == 0) else 1
                blocks.append(CIFARBlock(cin, width, stride, residual))
                cin = width
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def _plain_basic(self, x):
    out = self.relu(self.bn1(self.conv1(x)))
    return self.relu(self.bn2(self.conv2(out)))


def _plain_bottleneck(self, x):
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    return self.relu(self.bn3(self.conv3(out)))


def build_model(name):
    """Returns (model, input size, classes) for a zoo name of the Go project."""
    import torchvision

    n = name.lower()
    if n in TORCHVISION_WIDER:
        return getattr(torchvision.models, n)(weights=None), 224, 1000
    if n in TIMM_MODELS:
        import timm

        return timm.create_model(n, pretrained=False), TIMM_MODELS[n], 1000
    for prefix, residual in (("cifar_resnet", True), ("cifar_plain", False)):
        if n.startswith(prefix):
            return CIFARResNet(int(n[len(prefix):]), residual), 32, 10
    for prefix, residual in (("resnet", True), ("plain", False)):
        if n.startswith(prefix):
            depth = int(n[len(prefix):])
            if depth not in (18, 34, 50, 101, 152):
                break
            model = getattr(torchvision.models, f"resnet{depth}")(weights=None)
            if not residual:
                # The plain counterpart: the same layers without shortcuts (so no projections either).
                for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
                    for block in layer:
                        block.downsample = None
                        plain = _plain_basic if depth < 50 else _plain_bottleneck
                        block.forward = plain.__get__(block)
            return model, 224, 1000
    sys.exit(f"bench_pytorch.py: unknown model {name!r} (resnet18..152, plain18..152, cifar_resnetN, cifar_plainN, {', '.join(TORCHVISION_WIDER + tuple(TIMM_MODELS))})")


def count_macs(model, x):
    """Multiply-adds of the convolutions and linear layers of one forward pass of x."""
    total = [0]

    def conv_hook(m, inp, out):
        total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, inp, out):
        total[0] += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return total[0] // x.shape[0]


def default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cifar_resnet20", help="zoo model name (default cifar_resnet20)")
    p.add_argument("--batch", type=int, default=128, help="mini-batch size")
    p.add_argument("--steps", type=int, default=10, help="timed training steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                   help="fp32, or autocast to bf16/fp16 (fp32 master weights; fp16 with a gradient scaler)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format for weights and input")
    p.add_argument("--tf32", action="store_true",
                   help="let fp32 convolutions and matmuls use TF32 tensor cores (default: strict fp32, as `resnet bench`)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--threads", type=int, default=default_threads(), help="intra-op CPU threads (default: usable cores)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    a = p.parse_args()
    if a.batch < 1 or a.steps < 1 or a.warmup < 0:
        sys.exit("bench_pytorch.py: --batch and --steps must be >= 1 and --warmup >= 0")
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_pytorch.py: --device cuda but torch.cuda.is_available() is false")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    dev = torch.device(a.device)
    model, size, classes = build_model(a.model)
    params = sum(p.numel() for p in model.parameters())
    want = EXPECTED_PARAMS.get(a.model.lower())
    if want is not None and params != want:
        sys.exit(f"bench_pytorch.py: {a.model} has {params} parameters, want {want}")
    macs = count_macs(model, torch.zeros(1, 3, size, size))

    memory_format = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(dev, memory_format=memory_format).train()
    x = torch.randn(a.batch, 3, size, size, device=dev).contiguous(memory_format=memory_format)
    y = torch.randint(0, classes, (a.batch,), device=dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[a.precision]
    scaler = torch.amp.GradScaler(a.device, enabled=a.precision == "fp16")
    fwd = torch.compile(model) if a.compile else model

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(a.device, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = F.cross_entropy(fwd(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    for _ in range(a.warmup):
        step()
    sync()
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    if a.device == "cuda":
        end.record()
    sync()
    secs = time.perf_counter() - t0

    ips = a.batch * a.steps / secs
    rep = {
        "model": a.model,
        "device": a.device,
        "batch": a.batch,
        "steps": a.steps,
        "threads": torch.get_num_threads(),
        "images_per_sec": ips,
        "step_ms": 1000 * secs / a.steps,
        # Training costs about three times the forward MACs, two FLOPs each (as `resnet bench` counts).
        "gflop_per_sec": ips * 6 * macs / 1e9,
        "precision": a.precision,
        # ru_maxrss is KiB on Linux.
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "framework": f"pytorch {torch.__version__}",
        "channels_last": a.channels_last,
        "tf32": a.tf32,
        "compile": a.compile,
        "params": params,
    }
    if a.device == "cuda":
        rep["gpu_step_ms"] = start.elapsed_time(end) / a.steps
        rep["peak_device_bytes"] = torch.cuda.max_memory_allocated()
        rep["gpu"] = torch.cuda.get_device_name()
    if a.json:
        print(json.dumps(rep, indent=2))
        return
    print(f"{rep['model']} on {a.device} with PyTorch ({rep['threads']} threads, {a.precision}{', tf32' if a.tf32 else ''}), batch {a.batch}, "
          f"{a.steps} steps: {ips:.1f} images/s, {rep['step_ms']:.1f} ms/step, {rep['gflop_per_sec']:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
