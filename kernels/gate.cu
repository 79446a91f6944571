// The squeeze-and-excitation (SE) gate y = act(x * sigmoid(s) + z), x an activation of any format and s
// the (N, C) float logits of its planes, with its backward; and the excitation's bias-and-ReLU steps
// between the cuBLAS GEMMs (float, (N, R) row-major, like kernels/linear.cu).
//
// Fused path (backend.Options.Unfused false):
//   forward          gate_forward (scale, residual add and ReLU in one pass)
//   backward         gate_backward (dg = dy, masked by y > 0 with the ReLU, and the per-plane sums of
//                    dg*x for ds)
//   backward data    gate_backward_data (dx = dg*sigmoid(s) + the squeeze's dpool/HW in one pass)
// Unfused path:
//   forward          gate_scale + residual_add + relu_forward (kernels/batchnorm.cu)
//   backward         relu_backward (or a copy) + gate_grad_reduce
//   backward data    gate_scale + gate_pool_add
//
// Both paths give the same bits: the fused kernels round to T (rn::round_to) wherever the unfused path
// stores, the product x*sigmoid(s) is rounded on its own (__fmul_rn: never contracted into the add that
// follows), and ds sums each plane's products in the slots and tree of rn::tile_warp_sum, in double, in
// both. The sigmoid is computed in float with expf (no fast math).
//
// Kernels: gate_forward, gate_scale, gate_backward, gate_grad_reduce, gate_backward_data, gate_pool_add,
// excite_bias_relu, excite_relu_bias_grad.

#include <math.h>

#include "common.cuh"

namespace {

// sigmoid_of is 1/(1 + e^-v).
__device__ __forceinline__ float sigmoid_of(float v) { return 1.f / (1.f + expf(-v)); }

// gate_apply (gate_forward, and gate_scale with RES and RELU false): y = act(x*sigmoid(s) + z). Grid-stride
// over y.
template <typename T, rn::Layout L, bool RES, bool RELU>
__device__ __forceinline__ void gate_apply(const T* x, const float* s, const T* z, T* y, int N, int C, int HW) {
  rn::grid_walk<L>(N, C, 1, HW, [&](long long i, const rn::WalkAct<L>& p) {
    float v = rn::round_to<T>(__fmul_rn(rn::to_f32(x[i]), sigmoid_of(s[(long long)p.n() * C + p.c()])));
    if (RES) v = rn::round_to<T>(v + rn::to_f32(z[i]));
    if (RELU) v = v < 0.f ? 0.f : v;
    y[i] = rn::from_f32<T>(v);
  });
}

// gate_grad (gate_backward with STORE, gate_grad_reduce without): ds[n, c] = sigmoid'(s[n, c]) * the sum
// over plane (n, c) of g*x, where g is dy, masked by y > 0 with RELU; STORE also writes g to dg. One warp
// per tile of channels of an image, summing as avg_pool does (kernels/pooling.cu).
template <typename T, rn::Layout L, bool STORE, bool RELU>
__device__ __forceinline__ void gate_grad(const T* dy, const T* y, const T* x, const float* s, T* dg, float* ds,
                                          int N, int C, int HW) {
  constexpr int Width = rn::ChannelTile<T, L>::Width, Rows = rn::ChannelTile<T, L>::Rows;
  const int tiles = (C + Width - 1) / Width;
  const long long tile = (long long)blockIdx.x * RN_WARPS + (threadIdx.x >> 5);
  if (tile >= (long long)N * tiles) return;  // the whole warp leaves together
  const int lane = threadIdx.x & 31, n = (int)(tile / tiles);
  const int c = (int)(tile % tiles) * Width + lane % Width;
  double a[Width];
#pragma unroll
  for (int k = 0; k < Width; k++) a[k] = 0;
  if (c < C) {
    const long long start = rn::plane_start<L>(n, c, C, HW);
    const int step = rn::plane_step<L>(C);
    for (int i = lane / Width; i < HW; i += 32) {
#pragma unroll
      for (int k = 0; k < Width; k++) {
        const int ik = i + Rows * k;
        if (ik >= HW) continue;
        const long long e = start + (long long)ik * step;
        float g = rn::to_f32(dy[e]);
        if (RELU && !(rn::to_f32(y[e]) > 0.f)) g = 0.f;
        if (STORE) dg[e] = rn::from_f32<T>(g);
        a[k] += (double)g * (double)rn::to_f32(x[e]);
      }
    }
  }
  rn::tile_warp_sum(a);
  if (lane < Width && c < C) {
    const double sg = sigmoid_of(s[(long long)n * C + c]);
    ds[(long long)n * C + c] = (float)(sg * (1.0 - sg) * a[0]);
  }
}

// gate_input_grad (gate_backward_data): dx = dg*sigmoid(s) + dpool/HW, dpool optional (null). Grid-stride
// over dx, which may be dg.
template <typename T, rn::Layout L>
__device__ __forceinline__ void gate_input_grad(const T* dg, const float* s, const float* dpool, T* dx, int N,
                                                int C, int HW) {
  const float hw = (float)HW;
  rn::grid_walk<L>(N, C, 1, HW, [&](long long i, const rn::WalkAct<L>& p) {
    const long long nc = (long long)p.n() * C + p.c();
    float v = rn::round_to<T>(__fmul_rn(rn::to_f32(dg[i]), sigmoid_of(s[nc])));
    if (dpool) v += __fdiv_rn(dpool[nc], hw);
    dx[i] = rn::from_f32<T>(v);
  });
}

// gate_add_pool (gate_pool_add): dx += dpool/HW, the squeeze's gradient. Grid-stride over dx.
template <typename T, rn::Layout L>
__device__ __forceinline__ void gate_add_pool(const float* dpool, T* dx, int N, int C, int HW) {
  const float hw = (float)HW;
  rn::grid_walk<L>(N, C, 1, HW, [&](long long i, const rn::WalkAct<L>& p) {
    dx[i] = rn::from_f32<T>(rn::to_f32(dx[i]) + __fdiv_rn(dpool[(long long)p.n() * C + p.c()], hw));
  });
}

}  // namespace

#define GATE_FORWARD(name, T, L, ...)                                                                          \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                       \
      name(const T* x, const float* s, const T* z, T* y, int N, int C, int HW, int residual, int relu) {       \
    if (residual && relu) gate_apply<T, L, true, true>(x, s, z, y, N, C, HW);                                 \
    else if (residual) gate_apply<T, L, true, false>(x, s, z, y, N, C, HW);                                   \
    else if (relu) gate_apply<T, L, false, true>(x, s, z, y, N, C, HW);                                       \
    else gate_apply<T, L, false, false>(x, s, z, y, N, C, HW);                                                \
  }
RN_ACT_FORMATS(GATE_FORWARD, gate_forward, )

#define GATE_SCALE(name, T, L, ...)                                                                         \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                    \
      name(const T* x, const float* s, T* y, int N, int C, int HW) {                                        \
    gate_apply<T, L, false, false>(x, s, nullptr, y, N, C, HW);                                             \
  }
RN_ACT_FORMATS(GATE_SCALE, gate_scale, )

#define GATE_BACKWARD(name, T, L, ...)                                                                 \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK) name(const T* dy, const T* y, const T* x,    \
                                                              const float* s, T* dg, float* ds, int N, \
                                                              int C, int HW, int relu) {               \
    if (relu) gate_grad<T, L, true, true>(dy, y, x, s, dg, ds, N, C, HW);                             \
    else gate_grad<T, L, true, false>(dy, y, x, s, dg, ds, N, C, HW);                                 \
  }
RN_ACT_FORMATS(GATE_BACKWARD, gate_backward, )

#define GATE_GRAD_REDUCE(name, T, L, ...)                                                                     \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                      \
      name(const T* dg, const T* x, const float* s, float* ds, int N, int C, int HW) {                        \
    gate_grad<T, L, false, false>(dg, nullptr, x, s, nullptr, ds, N, C, HW);                                         \
  }
RN_ACT_FORMATS(GATE_GRAD_REDUCE, gate_grad_reduce, )

#define GATE_BACKWARD_DATA(name, T, L, ...)                                                                   \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                      \
      name(const T* dg, const float* s, const float* dpool, T* dx, int N, int C, int HW) {                    \
    gate_input_grad<T, L>(dg, s, dpool, dx, N, C, HW);                                                        \
  }
RN_ACT_FORMATS(GATE_BACKWARD_DATA, gate_backward_data, )

#define GATE_POOL_ADD(name, T, L, ...)                                                                        \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK) name(const float* dpool, T* dx, int N, int C, int HW) { \
    gate_add_pool<T, L>(dpool, dx, N, C, HW);                                                                 \
  }
RN_ACT_FORMATS(GATE_POOL_ADD, gate_pool_add, )

// excite_bias_relu: h[r, o] = max(h[r, o] + b[o], 0), the excitation's hidden layer after its GEMM.
// Grid-stride over h.
extern "C" __global__ void __launch_bounds__(RN_BLOCK) excite_bias_relu(float* h, const float* b, int N, int R) {
  const long long total = (long long)N * R;
  const long long stride = rn::grid_stride();
  long long i = rn::grid_start();
  if (i >= total) return;
  rn::Walk2 p;
  p.init(i, stride, R);
  for (; i < total; i += stride, p.next()) {
    const float v = h[i] + b[p.i];
    h[i] = v < 0.f ? 0.f : v;
  }
}

// excite_relu_bias_grad: dh[r, o] = 0 where h[r, o] is not > 0 (the ReLU's mask, in place), and db[o] =
// the sum over r of the masked dh, in row order, in double: the CPU reference's bits. One thread per
// column, reading each row coalesced.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    excite_relu_bias_grad(float* dh, const float* h, float* db, int N, int R) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= R) return;
  double sum = 0;
  for (int r = 0; r < N; r++) {
    const long long i = (long long)r * R + o;
    const float g = h[i] > 0.f ? dh[i] : 0.f;
    dh[i] = g;
    sum += g;
  }
  db[o] = (float)sum;
}
