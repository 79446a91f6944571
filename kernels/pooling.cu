// Max pooling (PyTorch semantics: padding counts as -inf, the first maximum in row-major window order
// wins, a NaN wins over everything) and global average pooling, forward and backward, on activations of
// any format (float, bf16 or f16; NCHW or NHWC), instantiated by RN_ACT_FORMATS (common.cuh) under the
// batch-norm kernels' naming: maxpool_forward is float NCHW, maxpool_forward_bf16_nhwc bf16 NHWC. The
// pooled features of the average pool and their gradient are float (N, C) in every format.
//
// The max-pool backward stores nothing from the forward: each input element recomputes the argmax of every
// window that covers it and gathers the gradients of the windows it won, in row-major window order, in
// float, rounding the sum once. No atomics: the sums are bit-for-bit those of the CPU reference, which
// scatters in the same order. Both pools visit a plane's elements in the same order in either layout, so
// NHWC gives the bits of NCHW. The average pool reads NHWC a sector of channels at a time (rn::ChannelTile),
// keeping each channel's partial sums in the order NCHW adds them.
//
// Windowed average pooling (DenseNet's 2x2/2 transitions, Inception-ResNet's 3x3/1 branch) divides each
// window's float sum, taken in row-major order, by kernel*kernel, or with exclude_pad by the number of its
// positions inside the input (PyTorch's count_include_pad=False). Its backward gathers, for each input
// element, the gradients of the windows that cover it, each divided as the forward divided, in row-major
// window order onto 0 (or onto dx's value with accumulate): the order in which the CPU reference scatters
// them, so the sums are its bits.
//
// Kernels: maxpool_forward, maxpool_backward, avgpool_forward, avgpool_backward, avgpool_window_forward,
// avgpool_window_backward.

#include <math.h>

#include "common.cuh"

namespace {

// window_argmax returns the flat (h*W + w) index of the maximum of output position (oy, ox)'s window in
// the plane at xp, whose element h*W + w is xp[(h*W + w)*step], and its value in best. Identical to the CPU
// reference's loop, ties and NaN included.
template <typename T>
__device__ __forceinline__ int window_argmax(const T* xp, int step, int H, int W, int oy, int ox, int k, int s,
                                             int pad, float& best) {
  const int y0 = oy * s - pad, x0 = ox * s - pad;
  const int ylo = max(0, y0), yhi = min(H, y0 + k);
  const int xlo = max(0, x0), xhi = min(W, x0 + k);
  best = -INFINITY;
  int arg = ylo * W + xlo;
  for (int iy = ylo; iy < yhi; iy++) {
    for (int ix = xlo; ix < xhi; ix++) {
      const float v = rn::to_f32(xp[(long long)(iy * W + ix) * step]);
      if (v > best || isnan(v)) {
        best = v;
        arg = iy * W + ix;
      }
    }
  }
  return arg;
}

// max_pool (maxpool_forward): x (N, C, H, W) -> y (N, C, OH, OW). Grid-stride over y.
template <typename T, rn::Layout L>
__device__ __forceinline__ void max_pool(const T* x, T* y, int N, int C, int H, int W, int OH, int OW, int k,
                                         int s, int pad) {
  rn::grid_walk<L>(N, C, OH, OW, [&](long long i, const rn::WalkAct<L>& p) {
    float best;
    window_argmax(x + rn::plane_start<L>(p.n(), p.c(), C, H * W), rn::plane_step<L>(C), H, W, p.h(), p.w(), k, s,
                  pad, best);
    y[i] = rn::from_f32<T>(best);
  });
}

// max_pool_grad (maxpool_backward): dx (N, C, H, W) from dy (N, C, OH, OW). Grid-stride over dx; every
// element is written (0 when it won no window).
template <typename T, rn::Layout L>
__device__ __forceinline__ void max_pool_grad(const T* x, const T* dy, T* dx, int N, int C, int H, int W, int OH,
                                              int OW, int k, int s, int pad) {
  const int step = rn::plane_step<L>(C);
  rn::grid_walk<L>(N, C, H, W, [&](long long i, const rn::WalkAct<L>& p) {
    const int ih = p.h(), iw = p.w(), me = ih * W + iw;
    // Windows oy with oy*s - pad <= ih < oy*s - pad + k, likewise for ox.
    const int ay = ih + pad - k + 1, ax = iw + pad - k + 1;
    const int oylo = ay <= 0 ? 0 : (ay + s - 1) / s, oyhi = min(OH - 1, (ih + pad) / s);
    const int oxlo = ax <= 0 ? 0 : (ax + s - 1) / s, oxhi = min(OW - 1, (iw + pad) / s);
    const T* xp = x + rn::plane_start<L>(p.n(), p.c(), C, H * W);
    const T* dyp = dy + rn::plane_start<L>(p.n(), p.c(), C, OH * OW);
    float acc = 0.f;
    for (int oy = oylo; oy <= oyhi; oy++) {
      for (int ox = oxlo; ox <= oxhi; ox++) {
        float best;
        if (window_argmax(xp, step, H, W, oy, ox, k, s, pad, best) == me) {
          acc += rn::to_f32(dyp[(long long)(oy * OW + ox) * step]);
        }
      }
    }
    dx[i] = rn::from_f32<T>(acc);
  });
}

// avg_pool (avgpool_forward): y[n, c] = mean of plane (n, c) of x (N, C, HW), summed in double. One warp
// per tile of channels of an image (rn::ChannelTile: one plane in NCHW, a sector's worth of channels in
// NHWC), each channel summed in 32 slots (slot u holds positions u, u + 32, ...) added by rn::tile_warp_sum.
template <typename T, rn::Layout L>
__device__ __forceinline__ void avg_pool(const T* x, float* y, int N, int C, int HW) {
  constexpr int Width = rn::ChannelTile<T, L>::Width, Rows = rn::ChannelTile<T, L>::Rows;
  const int tiles = (C + Width - 1) / Width;
  const long long tile = (long long)blockIdx.x * RN_WARPS + (threadIdx.x >> 5);
  if (tile >= (long long)N * tiles) return;  // the whole warp leaves together
  const int lane = threadIdx.x & 31, n = (int)(tile / tiles);
  const int c = (int)(tile % tiles) * Width + lane % Width;
  double s[Width];
#pragma unroll
  for (int k = 0; k < Width; k++) s[k] = 0;
  if (c < C) {
    const T* xp = x + rn::plane_start<L>(n, c, C, HW);
    const int step = rn::plane_step<L>(C);
    for (int i = lane / Width; i < HW; i += 32) {
#pragma unroll
      for (int k = 0; k < Width; k++) {
        const int ik = i + Rows * k;
        if (ik < HW) s[k] += rn::to_f32(xp[(long long)ik * step]);
      }
    }
  }
  rn::tile_warp_sum(s);
  if (lane < Width && c < C) y[(long long)n * C + c] = (float)(s[0] / HW);
}

// avg_pool_grad (avgpool_backward): every element of plane (n, c) of dx (N, C, HW) gets dy[n, c]/HW
// (correctly rounded, as the CPU reference divides), rounded to T.
template <typename T, rn::Layout L>
__device__ __forceinline__ void avg_pool_grad(const float* dy, T* dx, int N, int C, int HW) {
  const float n = (float)HW;
  rn::grid_walk<L>(N, C, 1, HW, [&](long long i, const rn::WalkAct<L>& p) {
    dx[i] = rn::from_f32<T>(__fdiv_rn(dy[(long long)p.n() * C + p.c()], n));
  });
}

// window_divisor is what output (oy, ox)'s window divides by: k*k, or with exclude_pad its positions inside
// the H x W input. ylo..yhi and xlo..xhi receive the window's rows and columns inside the input.
__device__ __forceinline__ float window_divisor(int H, int W, int oy, int ox, int k, int s, int pad, int exclude_pad,
                                                int& ylo, int& yhi, int& xlo, int& xhi) {
  const int y0 = oy * s - pad, x0 = ox * s - pad;
  ylo = max(0, y0);
  yhi = min(H, y0 + k);
  xlo = max(0, x0);
  xhi = min(W, x0 + k);
  return exclude_pad ? (float)((yhi - ylo) * (xhi - xlo)) : (float)(k * k);
}

// window_avg (avgpool_window_forward): x (N, C, H, W) -> y (N, C, OH, OW). Grid-stride over y.
template <typename T, rn::Layout L>
__device__ __forceinline__ void window_avg(const T* x, T* y, int N, int C, int H, int W, int OH, int OW, int k,
                                           int s, int pad, int exclude_pad) {
  const int step = rn::plane_step<L>(C);
  rn::grid_walk<L>(N, C, OH, OW, [&](long long i, const rn::WalkAct<L>& p) {
    int ylo, yhi, xlo, xhi;
    const float div = window_divisor(H, W, p.h(), p.w(), k, s, pad, exclude_pad, ylo, yhi, xlo, xhi);
    const T* xp = x + rn::plane_start<L>(p.n(), p.c(), C, H * W);
    float sum = 0.f;
    for (int iy = ylo; iy < yhi; iy++) {
      for (int ix = xlo; ix < xhi; ix++) sum = __fadd_rn(sum, rn::to_f32(xp[(long long)(iy * W + ix) * step]));
    }
    y[i] = rn::from_f32<T>(__fdiv_rn(sum, div));
  });
}

// window_avg_grad (avgpool_window_backward): dx (N, C, H, W) from dy (N, C, OH, OW), written or (with
// accumulate) added to. Grid-stride over dx.
template <typename T, rn::Layout L>
__device__ __forceinline__ void window_avg_grad(const T* dy, T* dx, int N, int C, int H, int W, int OH, int OW,
                                                int k, int s, int pad, int exclude_pad, int accumulate) {
  const int step = rn::plane_step<L>(C);
  rn::grid_walk<L>(N, C, H, W, [&](long long i, const rn::WalkAct<L>& p) {
    const int ih = p.h(), iw = p.w();
    const int ay = ih + pad - k + 1, ax = iw + pad - k + 1;
    const int oylo = ay <= 0 ? 0 : (ay + s - 1) / s, oyhi = min(OH - 1, (ih + pad) / s);
    const int oxlo = ax <= 0 ? 0 : (ax + s - 1) / s, oxhi = min(OW - 1, (iw + pad) / s);
    const T* dyp = dy + rn::plane_start<L>(p.n(), p.c(), C, OH * OW);
    float acc = accumulate ? rn::to_f32(dx[i]) : 0.f;
    for (int oy = oylo; oy <= oyhi; oy++) {
      for (int ox = oxlo; ox <= oxhi; ox++) {
        int ylo, yhi, xlo, xhi;
        const float div = window_divisor(H, W, oy, ox, k, s, pad, exclude_pad, ylo, yhi, xlo, xhi);
        acc = __fadd_rn(acc, __fdiv_rn(rn::to_f32(dyp[(long long)(oy * OW + ox) * step]), div));
      }
    }
    dx[i] = rn::from_f32<T>(acc);
  });
}

}  // namespace

#define MAXPOOL_FORWARD(name, T, L, ...)                                                          \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                          \
      name(const T* x, T* y, int N, int C, int H, int W, int OH, int OW, int k, int s, int pad) { \
    max_pool<T, L>(x, y, N, C, H, W, OH, OW, k, s, pad);                                          \
  }
RN_ACT_FORMATS(MAXPOOL_FORWARD, maxpool_forward, )

#define MAXPOOL_BACKWARD(name, T, L, ...)                                                                       \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                        \
      name(const T* x, const T* dy, T* dx, int N, int C, int H, int W, int OH, int OW, int k, int s, int pad) { \
    max_pool_grad<T, L>(x, dy, dx, N, C, H, W, OH, OW, k, s, pad);                                              \
  }
RN_ACT_FORMATS(MAXPOOL_BACKWARD, maxpool_backward, )

#define AVGPOOL_FORWARD(name, T, L, ...)                                                                    \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK) name(const T* x, float* y, int N, int C, int HW) { \
    avg_pool<T, L>(x, y, N, C, HW);                                                                         \
  }
RN_ACT_FORMATS(AVGPOOL_FORWARD, avgpool_forward, )

#define AVGPOOL_BACKWARD(name, T, L, ...)                                                                     \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK) name(const float* dy, T* dx, int N, int C, int HW) { \
    avg_pool_grad<T, L>(dy, dx, N, C, HW);                                                                    \
  }
RN_ACT_FORMATS(AVGPOOL_BACKWARD, avgpool_backward, )

#define AVGPOOL_WINDOW_FORWARD(name, T, L, ...)                                                         \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK) name(const T* x, T* y, int N, int C, int H, int W, \
                                                              int OH, int OW, int k, int s, int pad,     \
                                                              int exclude_pad) {                         \
    window_avg<T, L>(x, y, N, C, H, W, OH, OW, k, s, pad, exclude_pad);                                   \
  }
RN_ACT_FORMATS(AVGPOOL_WINDOW_FORWARD, avgpool_window_forward, )

#define AVGPOOL_WINDOW_BACKWARD(name, T, L, ...)                                                           \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK) name(const T* dy, T* dx, int N, int C, int H, int W, \
                                                              int OH, int OW, int k, int s, int pad,       \
                                                              int exclude_pad, int accumulate) {           \
    window_avg_grad<T, L>(dy, dx, N, C, H, W, OH, OW, k, s, pad, exclude_pad, accumulate);                  \
  }
RN_ACT_FORMATS(AVGPOOL_WINDOW_BACKWARD, avgpool_window_backward, )
