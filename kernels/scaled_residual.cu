// The sum that closes an Inception-ResNet unit (Szegedy et al. 2017), fused with the bias of the 1x1
// convolution before it and the ReLU after it, and its backward:
//
//   y = act(scale * (a + bias) + z)          act: ReLU, or the identity (the last Block8)
//
// a, z and y are activations of any format; bias (C) and its gradient are float.
//
// Fused path (backend.Options.Unfused false):
//   forward    scaled_residual_forward (bias, scale, residual add and ReLU in one pass)
//   backward   scaled_residual_bias_grad + scaled_residual_backward (dz = g, or dz += g, and da = scale*g
//              in one pass; g = dy masked by y > 0 with the ReLU)
// Unfused path:
//   forward    scaled_bias + residual_add_out (kernels/residual.cu) [+ relu_forward]
//   backward   scaled_residual_bias_grad + [relu_backward | a copy] + [residual_backward_accumulate | a copy]
//              + scaled_bias (no bias)
//
// Both paths give the same bits: the fused kernels round to T (rn::round_to) where the unfused path stores,
// and every product and sum is rounded on its own (__fmul_rn, __fadd_rn: no contraction into an FMA), in
// the order of the CPU reference: (a + bias) * scale + z. The bias gradient of a channel is the sum of its
// g over (N, H, W) in double, in rn::tile_warp_sum's slots and tree (the same in both layouts), rounded to
// float and then multiplied by scale.
//
// Kernels (each in every activation format, RN_ACT_FORMATS): scaled_residual_forward, scaled_bias,
// scaled_residual_backward, scaled_residual_bias_grad.

#include "common.cuh"

namespace {

// scale_bias is scale * (a + bias[c]) for element i of channel c (bias may be null: scale * a).
__device__ __forceinline__ float scale_bias(float a, const float* bias, int c, float scale) {
  return __fmul_rn(bias ? __fadd_rn(a, bias[c]) : a, scale);
}

// scaled_sum (scaled_residual_forward): y = act(scale*(a + bias) + z). Grid-stride over y, which may be a.
template <typename T, rn::Layout L, bool RELU>
__device__ __forceinline__ void scaled_sum(const T* a, const float* bias, const T* z, T* y, int N, int C, int HW,
                                           float scale) {
  rn::grid_walk<L>(N, C, 1, HW, [&](long long i, const rn::WalkAct<L>& p) {
    float v = rn::round_to<T>(scale_bias(rn::to_f32(a[i]), bias, p.c(), scale));
    v = __fadd_rn(v, rn::to_f32(z[i]));
    if (RELU) v = v < 0.f ? 0.f : v;
    y[i] = rn::from_f32<T>(v);
  });
}

// scaled (scaled_bias): y = scale*(a + bias), bias optional. Grid-stride over y, which may be a.
template <typename T, rn::Layout L>
__device__ __forceinline__ void scaled(const T* a, const float* bias, T* y, int N, int C, int HW, float scale) {
  rn::grid_walk<L>(N, C, 1, HW, [&](long long i, const rn::WalkAct<L>& p) {
    y[i] = rn::from_f32<T>(scale_bias(rn::to_f32(a[i]), bias, p.c(), scale));
  });
}

// scaled_grad (scaled_residual_backward): g = dy, masked by y > 0 with RELU; dz = g (or dz + g with
// accumulate), da = scale*g. Grid-stride; da may be dy (each element is read before it is written).
template <typename T, rn::Layout L, bool RELU>
__device__ __forceinline__ void scaled_grad(const T* y, const T* dy, T* da, T* dz, int N, int C, int HW,
                                            float scale, int accumulate) {
  rn::grid_walk<L>(N, C, 1, HW, [&](long long i, const rn::WalkAct<L>&) {
    float g = rn::to_f32(dy[i]);
    if (RELU && !(rn::to_f32(y[i]) > 0.f)) g = 0.f;
    dz[i] = rn::from_f32<T>(accumulate ? __fadd_rn(rn::to_f32(dz[i]), g) : g);
    da[i] = rn::from_f32<T>(__fmul_rn(g, scale));
  });
}

// bias_grad (scaled_residual_bias_grad): db[c] = scale * (float) the double sum of g over channel c's
// N*HW positions. One block per tile of channels (rn::ChannelTile); slot u of warp w holds the positions
// 32w + u + RN_BLOCK*m, as the batch-norm reductions read them.
template <typename T, rn::Layout L, bool RELU>
__device__ __forceinline__ void bias_grad(const T* y, const T* dy, float* db, int N, int C, int HW, float scale) {
  constexpr int Width = rn::ChannelTile<T, L>::Width, Rows = rn::ChannelTile<T, L>::Rows;
  __shared__ double shared[2 * Width * RN_WARPS];
  const int lane = threadIdx.x & 31;
  const int c = blockIdx.x * Width + lane % Width;
  double s[Width];
#pragma unroll
  for (int k = 0; k < Width; k++) s[k] = 0;
  if (c < C) {
    const long long M = (long long)N * HW;
    const int step = rn::plane_step<L>(C);
    for (long long j = (threadIdx.x - lane) + lane / Width; j < M; j += RN_BLOCK) {
#pragma unroll
      for (int k = 0; k < Width; k++) {
        const long long jk = j + Rows * k;
        if (jk >= M) continue;
        const int n = (int)(jk / HW), at = (int)(jk - (long long)n * HW);
        const long long e = rn::plane_start<L>(n, c, C, HW) + (long long)at * step;
        float g = rn::to_f32(dy[e]);
        if (RELU && !(rn::to_f32(y[e]) > 0.f)) g = 0.f;
        s[k] += g;
      }
    }
  }
  rn::tile_warp_sum(s);
  rn::tile_block_sum2<Width>(s[0], 0.0, shared, [&](int i, double a, double) {
    const long long ci = (long long)blockIdx.x * Width + i;
    if (ci < C) db[ci] = __fmul_rn((float)a, scale);
  });
}

}  // namespace

#define SCALED_RESIDUAL_FORWARD(name, T, L, ...)                                                      \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK) name(const T* a, const float* bias, const T* z, T* y, \
                                                              int N, int C, int HW, float scale, int relu) { \
    if (relu) scaled_sum<T, L, true>(a, bias, z, y, N, C, HW, scale);                                 \
    else scaled_sum<T, L, false>(a, bias, z, y, N, C, HW, scale);                                     \
  }
RN_ACT_FORMATS(SCALED_RESIDUAL_FORWARD, scaled_residual_forward, )

#define SCALED_BIAS(name, T, L, ...)                                                                    \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                \
      name(const T* a, const float* bias, T* y, int N, int C, int HW, float scale) {                    \
    scaled<T, L>(a, bias, y, N, C, HW, scale);                                                          \
  }
RN_ACT_FORMATS(SCALED_BIAS, scaled_bias, )

#define SCALED_RESIDUAL_BACKWARD(name, T, L, ...)                                                          \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK) name(const T* y, const T* dy, T* da, T* dz, int N, \
                                                              int C, int HW, float scale, int relu, int acc) { \
    if (relu) scaled_grad<T, L, true>(y, dy, da, dz, N, C, HW, scale, acc);                                \
    else scaled_grad<T, L, false>(y, dy, da, dz, N, C, HW, scale, acc);                                    \
  }
RN_ACT_FORMATS(SCALED_RESIDUAL_BACKWARD, scaled_residual_backward, )

#define SCALED_RESIDUAL_BIAS_GRAD(name, T, L, ...)                                                       \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                 \
      name(const T* y, const T* dy, float* db, int N, int C, int HW, float scale, int relu) {            \
    if (relu) bias_grad<T, L, true>(y, dy, db, N, C, HW, scale);                                         \
    else bias_grad<T, L, false>(y, dy, db, N, C, HW, scale);                                             \
  }
RN_ACT_FORMATS(SCALED_RESIDUAL_BIAS_GRAD, scaled_residual_bias_grad, )
