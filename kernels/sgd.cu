// SGD with momentum, weight decay and optional Nesterov (PyTorch semantics, dampening 0):
//
//   g = grad*grad_scale + wd*p;  buf = momentum*buf + g;  g = nesterov ? g + momentum*buf : buf;  p -= lr*g
//
// without momentum buffer (buf null): p -= lr*(grad*grad_scale + wd*p). grad_scale is the reciprocal of
// the loss scale (1 without one: the product is then exactly grad). Every operation is explicitly rounded (no
// fused multiply-add, and no flushed subnormals: the kernels are built without fast math), so the update
// is bit-for-bit the CPU reference's wherever the Go compiler does not fuse either (it may on arm64, and on
// amd64 with GOAMD64=v3), and the fused and unfused steps run the same sgd_update.
//
// Fused: sgd_step updates every parameter of a step in one launch, from a device array of slot
// descriptors. Unfused: sgd_step_single, one launch per parameter.

#include <stddef.h>

#include "common.cuh"

// SgdSlot is one parameter of a step. Its layout is mirrored by the Go side (internal/cuda/sgd.go): keep
// the two in sync (the static_asserts pin it).
struct SgdSlot {
  float* param;
  const float* grad;
  float* buf;             // null without momentum
  long long n;            // elements
  long long first_block;  // the first block of sgd_step's grid that works on this slot
  float weight_decay;
  int pad_;
};
static_assert(sizeof(SgdSlot) == 48, "SgdSlot layout changed: update internal/cuda/sgd.go");
static_assert(offsetof(SgdSlot, n) == 24 && offsetof(SgdSlot, first_block) == 32 &&
                  offsetof(SgdSlot, weight_decay) == 40,
              "SgdSlot layout changed: update internal/cuda/sgd.go");

// Each block of sgd_step updates SGD_PER_BLOCK consecutive elements of one slot.
#define SGD_PER_THREAD 4
#define SGD_PER_BLOCK (RN_BLOCK * SGD_PER_THREAD)

namespace {

__device__ __forceinline__ void sgd_update(float* param, const float* grad, float* buf, long long i, float lr,
                                           float momentum, int nesterov, float wd, float grad_scale) {
  const float p = param[i];
  float g = __fadd_rn(__fmul_rn(grad[i], grad_scale), __fmul_rn(wd, p));
  if (buf) {
    const float b = __fadd_rn(__fmul_rn(momentum, buf[i]), g);
    buf[i] = b;
    g = nesterov ? __fadd_rn(g, __fmul_rn(momentum, b)) : b;
  }
  param[i] = __fsub_rn(p, __fmul_rn(lr, g));
}

}  // namespace

// sgd_step: block b works on the slot with the largest first_block <= b (slots are sorted by first_block;
// empty slots own no block).
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    sgd_step(const SgdSlot* slots, int nslots, float lr, float momentum, int nesterov, float grad_scale) {
  const long long b = blockIdx.x;
  int lo = 0, hi = nslots - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (slots[mid].first_block <= b) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const SgdSlot sl = slots[lo];
  const long long base = (b - sl.first_block) * SGD_PER_BLOCK + threadIdx.x;
#pragma unroll
  for (int e = 0; e < SGD_PER_THREAD; e++) {
    const long long i = base + (long long)e * RN_BLOCK;
    if (i < sl.n) sgd_update(sl.param, sl.grad, sl.buf, i, lr, momentum, nesterov, sl.weight_decay, grad_scale);
  }
}

// sgd_step_single: one parameter, grid-stride.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    sgd_step_single(float* param, const float* grad, float* buf, long long n, float lr, float momentum, int nesterov,
                    float weight_decay, float grad_scale) {
  const long long stride = rn::grid_stride();
  for (long long i = rn::grid_start(); i < n; i += stride) {
    sgd_update(param, grad, buf, i, lr, momentum, nesterov, weight_decay, grad_scale);
  }
}
