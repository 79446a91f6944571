// Max pooling (PyTorch semantics: padding counts as -inf, the first maximum in row-major window order
// wins, a NaN wins over everything) and global average pooling, forward and backward, on NCHW float32.
//
// The max-pool backward stores nothing from the forward: each input element recomputes the argmax of every
// window that covers it and gathers the gradients of the windows it won, in row-major window order. No
// atomics: the sums are bit-for-bit those of the CPU reference, which scatters in the same order.
//
// Kernels: maxpool_forward, maxpool_backward, avgpool_forward, avgpool_backward.

#include <math.h>

#include "common.cuh"

namespace {

// window_argmax returns the flat (h*W + w) index of the maximum of output position (oy, ox)'s window in
// plane xp, and its value in best. Identical to the CPU reference's loop, ties and NaN included.
__device__ __forceinline__ int window_argmax(const float* xp, int H, int W, int oy, int ox, int k, int s, int pad,
                                             float& best) {
  const int y0 = oy * s - pad, x0 = ox * s - pad;
  const int ylo = max(0, y0), yhi = min(H, y0 + k);
  const int xlo = max(0, x0), xhi = min(W, x0 + k);
  best = -INFINITY;
  int arg = ylo * W + xlo;
  for (int iy = ylo; iy < yhi; iy++) {
    for (int ix = xlo; ix < xhi; ix++) {
      const float v = xp[iy * W + ix];
      if (v > best || isnan(v)) {
        best = v;
        arg = iy * W + ix;
      }
    }
  }
  return arg;
}

}  // namespace

// maxpool_forward: x (planes, H, W) -> y (planes, OH, OW). Grid-stride over y.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    maxpool_forward(const float* x, float* y, int planes, int H, int W, int OH, int OW, int k, int s, int pad) {
  const long long total = (long long)planes * OH * OW;
  const long long stride = rn::grid_stride();
  long long i = rn::grid_start();
  if (i >= total) return;
  rn::Walk4 p;
  p.init(i, stride, 1, OH, OW);
  for (; i < total; i += stride, p.next()) {
    float best;
    window_argmax(x + (long long)p.n * H * W, H, W, p.h, p.w, k, s, pad, best);
    y[i] = best;
  }
}

// maxpool_backward: dx (planes, H, W) from dy (planes, OH, OW). Grid-stride over dx; every element is
// written (0 when it won no window).
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    maxpool_backward(const float* x, const float* dy, float* dx, int planes, int H, int W, int OH, int OW, int k,
                     int s, int pad) {
  const long long total = (long long)planes * H * W;
  const long long stride = rn::grid_stride();
  long long i = rn::grid_start();
  if (i >= total) return;
  rn::Walk4 p;
  p.init(i, stride, 1, H, W);
  for (; i < total; i += stride, p.next()) {
    const int ih = p.h, iw = p.w, me = ih * W + iw;
    // Windows oy with oy*s - pad <= ih < oy*s - pad + k, likewise for ox.
    const int ay = ih + pad - k + 1, ax = iw + pad - k + 1;
    const int oylo = ay <= 0 ? 0 : (ay + s - 1) / s, oyhi = min(OH - 1, (ih + pad) / s);
    const int oxlo = ax <= 0 ? 0 : (ax + s - 1) / s, oxhi = min(OW - 1, (iw + pad) / s);
    const float* xp = x + (long long)p.n * H * W;
    const float* dyp = dy + (long long)p.n * OH * OW;
    float acc = 0.f;
    for (int oy = oylo; oy <= oyhi; oy++) {
      for (int ox = oxlo; ox <= oxhi; ox++) {
        float best;
        if (window_argmax(xp, H, W, oy, ox, k, s, pad, best) == me) acc += dyp[oy * OW + ox];
      }
    }
    dx[i] = acc;
  }
}

// avgpool_forward: y[p] = mean of plane p of x (planes, HW), summed in double. One warp per plane.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    avgpool_forward(const float* x, float* y, int planes, int HW) {
  const int plane = blockIdx.x * RN_WARPS + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (plane >= planes) return;  // the whole warp leaves together
  const float* xp = x + (long long)plane * HW;
  double s = 0;
  for (int i = lane; i < HW; i += 32) s += xp[i];
  s = rn::warp_sum(s);
  if (lane == 0) y[plane] = (float)(s / HW);
}

// avgpool_backward: every element of plane p of dx (planes, HW) gets dy[p]/HW (correctly rounded, as the
// CPU reference divides).
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    avgpool_backward(const float* dy, float* dx, int planes, int HW) {
  const long long total = (long long)planes * HW;
  const long long stride = rn::grid_stride();
  long long i = rn::grid_start();
  if (i >= total) return;
  rn::Walk2 p;
  p.init(i, stride, HW);
  const float n = (float)HW;
  for (; i < total; i += stride, p.next()) dx[i] = __fdiv_rn(dy[p.p], n);
}
