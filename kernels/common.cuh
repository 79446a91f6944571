// Device helpers shared by the kernel families: the block size every launcher uses, the activation element
// types and layouts (and RN_ACT_FORMATS, which instantiates a kernel for each), block reductions in a fixed
// order (so results are deterministic), and coordinate walkers that step a flat NCHW or NHWC index by the
// grid stride without dividing on every element.
#pragma once

#include <stdint.h>

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif  // the CPU emulator's emulator.h defines the 16-bit types and their conversions

// Every kernel runs 256-thread blocks; the reductions below rely on it.
#define RN_BLOCK 256
#define RN_WARPS (RN_BLOCK / 32)

namespace rn {

// The element types of activations (backend.DType F32, BF16, F16). Kernels templated on the type load each
// element as float with to_f32, compute in float (or double), and store with from_f32, which rounds to
// nearest even: the results are the f32 computation rounded once to the type.
typedef __nv_bfloat16 bf16;
typedef __half f16;

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(f16 v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ bf16 from_f32<bf16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ f16 from_f32<f16>(float v) {
  return __float2half_rn(v);
}

// round_to rounds v to T and back: the value a kernel that stored v as T would read again. Fused kernels
// round where the unfused path stores an intermediate, so both paths give the same bits in every type (a
// no-op for float).
template <typename T>
__device__ __forceinline__ float round_to(float v) {
  return to_f32(from_f32<T>(v));
}

// The memory orders of 4-D activations (backend.Layout): element (n, c, h, w) of an (N, C, H, W) tensor is
// at ((n*C + c)*H + h)*W + w in NCHW and at ((n*H + h)*W + w)*C + c in NHWC.
enum Layout { NCHW, NHWC };

// act_index is the offset of element (n, c, h, w) of an (N, C, H, W) activation in layout L.
template <Layout L>
__device__ __forceinline__ long long act_index(int n, int c, int h, int w, int C, int H, int W) {
  if (L == NCHW) return (((long long)n * C + c) * H + h) * W + w;
  return (((long long)n * H + h) * W + w) * C + c;
}

// plane_start and plane_step locate the H*W elements of plane (n, c): element i of the plane (i = h*W + w)
// is at plane_start + i*plane_step.
template <Layout L>
__device__ __forceinline__ long long plane_start(int n, int c, int C, int HW) {
  return L == NCHW ? ((long long)n * C + c) * HW : (long long)n * HW * C + c;
}
template <Layout L>
__device__ __forceinline__ int plane_step(int C) {
  return L == NCHW ? 1 : C;
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ double warp_allsum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Bytes of a memory sector, the unit in which the GPU moves data between DRAM, L2 and the SMs; a warp's
// load costs one transfer per sector it touches. internal/cuda/kernels.go has the same constant.
#define RN_SECTOR 32

// ChannelTile<T, L> is how a warp reads the values of a reduction over each channel's positions (the
// batch-norm sums, the average pool): Width channels at once, Rows = 32/Width positions of each. In NCHW
// a channel's positions are contiguous and Width is 1, so the 32 lanes read 32 consecutive positions. In
// NHWC a position's channels are contiguous and Width channels fill one sector (8 float, 16 bf16 or f16):
// lane r*Width + i reads channel i of position r, so each of the warp's Rows positions is one whole sector.
template <typename T, Layout L>
struct ChannelTile {
  static constexpr int Width = L == NCHW ? 1 : RN_SECTOR / (int)sizeof(T);
  static constexpr int Rows = 32 / Width;
};

// Slots. A reduction sums each channel's positions in 32 slots per warp: slot u of a warp starting at
// position p0 holds p0 + u, p0 + u + S, p0 + u + 2S, ... (S the stride of its loop), summed in that order;
// lane r*Width + i of ChannelTile holds channel i's slots u = Rows*k + r in a[k]. tile_warp_sum then adds
// the slots in warp_sum's tree (slot u + o into slot u for o = 16, 8, 4, 2, 1): steps o >= Rows add within
// a thread, the others are shuffles. The order of the additions depends on the positions alone, never on
// the layout, so NCHW (Width 1: slot u is lane u, and this is warp_sum) and NHWC give the same bits. The
// sum of channel i ends in a[0] of lane i.
template <int Width>
__device__ __forceinline__ void tile_warp_sum(double (&a)[Width]) {
  constexpr int Rows = 32 / Width;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    if (o >= Rows) {
#pragma unroll
      for (int k = 0; k < o / Rows; k++) a[k] += a[k + o / Rows];
    } else {
      a[0] += __shfl_down_sync(0xffffffffu, a[0], o * Width);
    }
  }
}

// tile_block_sum2 adds the warps' sums a and b of a block of RN_BLOCK threads (after tile_warp_sum: valid
// in lanes i < Width) in a fixed tree, the same for every layout, and calls done(i, a, b) in lane 0 of
// warp i % RN_WARPS with channel i's sums. shared holds 2*Width*RN_WARPS doubles.
template <int Width, typename F>
__device__ __forceinline__ void tile_block_sum2(double a, double b, double* shared, F done) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane < Width) {
    shared[lane * RN_WARPS + warp] = a;
    shared[(Width + lane) * RN_WARPS + warp] = b;
  }
  __syncthreads();
  for (int i = warp; i < Width; i += RN_WARPS) {
    a = lane < RN_WARPS ? shared[i * RN_WARPS + lane] : 0.0;
    b = lane < RN_WARPS ? shared[(Width + i) * RN_WARPS + lane] : 0.0;
    a = warp_sum(a);
    b = warp_sum(b);
    if (lane == 0) done(i, a, b);
  }
}

// grid_start and grid_stride are the first flat index of this thread and the step of a grid-stride loop.
__device__ __forceinline__ long long grid_start() {
  return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long grid_stride() { return (long long)gridDim.x * blockDim.x; }

// Walk4 follows the (n, c, h, w) coordinates of a flat index into an (N, C, H, W) tensor while the index
// advances by a fixed stride: the stride is split into mixed-radix digits once, and each step is a digit
// addition with carries (each digit wraps at most once because every digit is below its radix).
struct Walk4 {
  int n, c, h, w;
  int dn, dc, dh, dw;
  int C, H, W;

  __device__ __forceinline__ void init(long long start, long long stride, int C_, int H_, int W_) {
    C = C_;
    H = H_;
    W = W_;
    long long s = start;
    w = (int)(s % W);
    s /= W;
    h = (int)(s % H);
    s /= H;
    c = (int)(s % C);
    n = (int)(s / C);
    s = stride;
    dw = (int)(s % W);
    s /= W;
    dh = (int)(s % H);
    s /= H;
    dc = (int)(s % C);
    dn = (int)(s / C);
  }

  __device__ __forceinline__ void next() {
    w += dw;
    int carry = w >= W;
    if (carry) w -= W;
    h += dh + carry;
    carry = h >= H;
    if (carry) h -= H;
    c += dc + carry;
    carry = c >= C;
    if (carry) c -= C;
    n += dn + carry;
  }
};

// WalkAct is Walk4 for an activation in layout L: it follows (n, c, h, w) while the flat index advances,
// the digits being stepped in memory order ((n, c, h, w) for NCHW, (n, h, w, c) for NHWC).
template <Layout L>
struct WalkAct {
  Walk4 d;

  __device__ __forceinline__ void init(long long start, long long stride, int C, int H, int W) {
    if (L == NCHW) {
      d.init(start, stride, C, H, W);
    } else {
      d.init(start, stride, H, W, C);  // Walk4's digits (c, h, w) then hold (h, w, c)
    }
  }
  __device__ __forceinline__ void next() { d.next(); }
  __device__ __forceinline__ int n() const { return d.n; }
  __device__ __forceinline__ int c() const { return L == NCHW ? d.c : d.w; }
  __device__ __forceinline__ int h() const { return L == NCHW ? d.h : d.c; }
  __device__ __forceinline__ int w() const { return L == NCHW ? d.w : d.h; }
};

// grid_walk calls f(i, p) for each flat index i of an (N, C, H, W) activation in layout L that this thread
// owns in a grid-stride loop, p following i's coordinates.
template <Layout L, typename F>
__device__ __forceinline__ void grid_walk(int N, int C, int H, int W, F f) {
  const long long total = (long long)N * C * H * W;
  const long long stride = grid_stride();
  long long i = grid_start();
  if (i >= total) return;
  WalkAct<L> p;
  p.init(i, stride, C, H, W);
  for (; i < total; i += stride, p.next()) f(i, p);
}

// Walk2 is Walk4 for (plane, i) coordinates of an (P, L) tensor.
struct Walk2 {
  long long p;
  int i;
  long long dp;
  int di;
  int L;

  __device__ __forceinline__ void init(long long start, long long stride, int L_) {
    L = L_;
    p = start / L;
    i = (int)(start - p * L);
    dp = stride / L;
    di = (int)(stride - dp * L);
  }

  __device__ __forceinline__ void next() {
    i += di;
    p += dp;
    if (i >= L) {
      i -= L;
      p++;
    }
  }
};

// Shortcut is the residual input z of a batch norm with output (N, C, H, W): z is (N, Cz, H*s, W*s) in the
// output's layout L and output channel c reads z channel c - (C - Cz)/2 at (h*s, w*s) when that channel
// exists (option A: zero-padded channels, strided subsampling); Cz == C and s == 1 is the identity shortcut.
template <Layout L>
struct Shortcut {
  int Cz, s, off, Hz, Wz;
  bool identity;

  __device__ __forceinline__ Shortcut(int C, int H, int W, int Cz_, int s_) {
    Cz = Cz_;
    s = s_;
    off = (C - Cz_) / 2;
    Hz = H * s_;
    Wz = W * s_;
    identity = Cz_ == C && s_ == 1;
  }

  // index returns the element of z that output (n, c, h, w) reads, or -1 when it reads zero padding.
  __device__ __forceinline__ long long index(int n, int c, int h, int w) const {
    const int cz = c - off;
    if (cz < 0 || cz >= Cz) return -1;
    return act_index<L>(n, cz, h * s, w * s, Cz, Hz, Wz);
  }

  // step is the distance in z from element (n, c, h, w) to (n, c, h + r, w + q).
  __device__ __forceinline__ long long step(int r, int q) const {
    const long long d = (long long)r * Wz + q;
    return L == NCHW ? d : d * Cz;
  }
};

// RN_ACT_FORMATS(M, name, ...) instantiates a kernel for every activation format: M(kernel name, element
// type, layout, ...) once per format, the name suffixed by the type (_bf16, _f16; none for float) and then
// the layout (_nhwc; none for NCHW), so the float NCHW kernel keeps the plain name. RN_ACT_DTYPES does the
// same for element-wise kernels, which the layout does not change. internal/cuda/kernels.go derives the
// names the same way (TestKernelTableMatchesSources checks both).
#define RN_ACT_FORMATS(M, name, ...)                   \
  M(name, float, rn::NCHW, __VA_ARGS__)                \
  M(name##_nhwc, float, rn::NHWC, __VA_ARGS__)         \
  M(name##_bf16, rn::bf16, rn::NCHW, __VA_ARGS__)      \
  M(name##_bf16_nhwc, rn::bf16, rn::NHWC, __VA_ARGS__) \
  M(name##_f16, rn::f16, rn::NCHW, __VA_ARGS__)        \
  M(name##_f16_nhwc, rn::f16, rn::NHWC, __VA_ARGS__)
#define RN_ACT_DTYPES(M, name, ...)               \
  M(name, float, rn::NCHW, __VA_ARGS__)           \
  M(name##_bf16, rn::bf16, rn::NCHW, __VA_ARGS__) \
  M(name##_f16, rn::f16, rn::NCHW, __VA_ARGS__)

}  // namespace rn
