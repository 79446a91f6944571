// Batch normalisation over (N, H, W) per channel of NCHW float32 tensors, training and inference, forward
// and backward, with the optional fused residual add (identity or option-A shortcut) and ReLU of
// backend.BatchNormParams:
//
//   y = relu((x - mean) * gamma * invstd + beta + shortcut(z))
//
// Statistics: channel c is cut into `chunks` contiguous pieces of its N*H*W values; block (chunk, c) sums
// its piece in double (shifted by the channel's first value so the variance does not cancel) and the
// pieces are added in chunk order. No float atomics anywhere: every result is bit-for-bit reproducible.
//
// The fused and unfused paths give the same bits too: each step of the math is one piece of code that
// both paths run (the apply, grad_chunk and input_grad templates, finalize_stats, finalize_grad,
// inference_scale), so the compiler rounds and contracts it alike in both, and the kernels are built
// without fast math (Makefile NVCCFLAGS: no flushed subnormals, correctly rounded division and square
// root; see docs/decisions/0005-cuda-determinism.md).
//
// Fused path (backend.Options.Unfused false):
//   training forward   bn_forward_stats (statistics; the last block of each channel finalizes them)
//                      + bn_forward_apply[_relu|_add|_add_relu]
//   inference forward  bn_inference_apply[_relu|_add|_add_relu] (one pass, running statistics inline)
//   backward           bn_backward_reduce[_relu] (dgamma, dbeta; last block finalizes)
//                      + bn_backward_dx[_relu|_add|_add_relu] (dx and the shortcut gradient dz)
// Unfused path, the same math one step per kernel:
//   training forward   bn_stats_partial + bn_stats_finalize + bn_normalize [+ residual_add] [+ relu_forward]
//   inference forward  bn_inference_params + bn_normalize [+ residual_add] [+ relu_forward]
//   backward           [relu_backward] [+ residual_backward] + bn_backward_reduce_partial
//                      + bn_backward_finalize + bn_backward_input

#include "common.cuh"

namespace {

// ChunkIter walks the positions [j0, j1) of channel c, position j being element j % HW of image j / HW,
// one RN_BLOCK-wide step per iteration; off is the element offset of the current position in the tensor.
struct ChunkIter {
  long long j, j1, off, plane, doff;
  int i, di, HW;

  __device__ __forceinline__ ChunkIter(int c, int C, int HW_, long long j0, long long j1_) {
    HW = HW_;
    j = j0 + threadIdx.x;
    j1 = j1_;
    plane = (long long)C * HW;
    const long long n = j / HW;
    i = (int)(j - n * HW);
    off = n * plane + (long long)c * HW + i;
    const long long dn = RN_BLOCK / HW;
    di = RN_BLOCK % HW;
    doff = dn * plane + di;
  }

  __device__ __forceinline__ bool more() const { return j < j1; }

  __device__ __forceinline__ void next() {
    j += RN_BLOCK;
    i += di;
    off += doff;
    if (i >= HW) {
      i -= HW;
      off += plane - HW;
    }
  }
};

// chunk_range is the piece [j0, j1) of the M = N*HW positions of a channel that block `chunk` reduces.
__device__ __forceinline__ void chunk_range(long long M, int chunk, int chunks, long long& j0, long long& j1) {
  j0 = M * chunk / chunks;
  j1 = M * (chunk + 1) / chunks;
}

// stats_chunk sums (x - K) and (x - K)^2 over this block's piece of channel blockIdx.y, K being the
// channel's first value; the sums are valid in thread 0.
__device__ __forceinline__ void stats_chunk(const float* x, int N, int C, int HW, int chunks, double K,
                                            double& s1, double& s2, double* shared) {
  const int c = blockIdx.y;
  long long j0, j1;
  chunk_range((long long)N * HW, blockIdx.x, chunks, j0, j1);
  s1 = 0;
  s2 = 0;
  for (ChunkIter it(c, C, HW, j0, j1); it.more(); it.next()) {
    const double d = (double)x[it.off] - K;
    s1 += d;
    s2 += d * d;
  }
  rn::block_sum2(s1, s2, shared);
}

// sum_partials adds the per-chunk pairs of channel c in chunk order. __ldcg reads them from L2, where the
// other blocks' writes are visible after their __threadfence.
__device__ __forceinline__ void sum_partials(const double* partial, int c, int chunks, double& s1, double& s2) {
  s1 = 0;
  s2 = 0;
  const double* p = partial + 2LL * c * chunks;
  for (int k = 0; k < chunks; k++) {
    s1 += __ldcg(p + 2 * k);
    s2 += __ldcg(p + 2 * k + 1);
  }
}

// finalize_stats turns the shifted sums of channel c into the saved mean and inverse standard deviation
// (biased variance), the running statistics (unbiased variance, momentum as in PyTorch) and the scale
// gamma*invstd that the apply pass multiplies by. All in double, as the CPU reference does.
__device__ __forceinline__ void finalize_stats(int c, double s1, double s2, double M, double K, float eps,
                                               float momentum, const float* gamma, float* save_mean,
                                               float* save_invstd, float* run_mean, float* run_var,
                                               float* scale) {
  const double dmean = s1 / M;
  double var = (s2 - s1 * dmean) / M;
  if (var < 0) var = 0;
  const double mean = K + dmean;
  const double invstd = 1.0 / sqrt(var + (double)eps);
  const double mom = momentum;
  save_mean[c] = (float)mean;
  save_invstd[c] = (float)invstd;
  run_mean[c] = (float)((1 - mom) * (double)run_mean[c] + mom * mean);
  run_var[c] = (float)((1 - mom) * (double)run_var[c] + mom * var * M / (M - 1));
  scale[c] = (float)((double)gamma[c] * invstd);
}

// last_block publishes this block's partial pair and reports (to every thread) whether it was the last
// block of its channel to do so; the last one resets the channel's counter for the next launch.
__device__ __forceinline__ bool last_block(double s1, double s2, double* partial, unsigned int* counters,
                                           int chunks) {
  __shared__ bool last;
  const int c = blockIdx.y;
  if (threadIdx.x == 0) {
    double* p = partial + 2LL * (c * (long long)chunks + blockIdx.x);
    p[0] = s1;
    p[1] = s2;
    __threadfence();
    const unsigned int done = atomicAdd(&counters[c], 1u);
    last = done == (unsigned int)(chunks - 1);
    if (last) counters[c] = 0;
  }
  __syncthreads();
  return last;
}

// inference_scale is the inference path's gamma/sqrt(running_var + eps), each operation correctly rounded
// in float: bn_inference_params computes it once per channel, the fused inference kernels once per
// element, and both get the same bits (float, not double: the fused kernels run it per element, and
// double division and square root are slow on GPUs without full-rate double).
__device__ __forceinline__ float inference_scale(float gamma, float run_var, float eps) {
  return __fdiv_rn(gamma, __fsqrt_rn(__fadd_rn(run_var, eps)));
}

// apply writes y = act((x - mean)*scale + beta [+ shortcut(z)]). INFER takes scale from the running
// variance (scale_or_var holds it) through inference_scale instead of a precomputed per-channel scale.
template <bool RELU, bool RES, bool INFER>
__device__ __forceinline__ void apply(const float* x, const float* z, float* y, const float* mean,
                                      const float* scale_or_var, const float* gamma, const float* beta,
                                      float eps, int N, int C, int H, int W, int Cz, int zs) {
  const long long total = (long long)N * C * H * W;
  const long long stride = rn::grid_stride();
  long long i = rn::grid_start();
  if (i >= total) return;
  rn::Walk4 p;
  p.init(i, stride, C, H, W);
  const rn::Shortcut sc(C, H, W, Cz, zs);
  for (; i < total; i += stride, p.next()) {
    const int c = p.c;
    float s;
    if (INFER) {
      s = inference_scale(gamma[c], scale_or_var[c], eps);
    } else {
      s = scale_or_var[c];
    }
    float v = (x[i] - mean[c]) * s + beta[c];
    if (RES) {
      if (sc.identity) {
        v += z[i];
      } else {
        const long long zi = sc.index(p.n, c, p.h, p.w);
        if (zi >= 0) v += z[zi];
      }
    }
    if (RELU) v = v < 0.f ? 0.f : v;  // NaN stays NaN, as in the CPU reference
    y[i] = v;
  }
}

// grad_chunk sums gy and gy*(x - mean) over this block's piece of channel blockIdx.y, gy being dy masked
// by y > 0 when RELU; the sums are valid in thread 0.
template <bool RELU>
__device__ __forceinline__ void grad_chunk(const float* x, const float* y, const float* dy, const float* mean,
                                           int N, int C, int HW, int chunks, double& s1, double& s2,
                                           double* shared) {
  const int c = blockIdx.y;
  const double m = mean[c];
  long long j0, j1;
  chunk_range((long long)N * HW, blockIdx.x, chunks, j0, j1);
  s1 = 0;
  s2 = 0;
  for (ChunkIter it(c, C, HW, j0, j1); it.more(); it.next()) {
    float g = dy[it.off];
    if (RELU && !(y[it.off] > 0.f)) g = 0.f;
    const double gd = g;
    s1 += gd;
    s2 += gd * ((double)x[it.off] - m);
  }
  rn::block_sum2(s1, s2, shared);
}

// finalize_grad writes dbeta = sum gy and dgamma = sum gy*xhat of channel c, and the coefficients of
// dx = k*(gy - a - (x - mean)*b): k = gamma*invstd, a = dbeta/M, b = dgamma*invstd/M.
__device__ __forceinline__ void finalize_grad(int c, double sdy, double sdyx, double M, const float* gamma,
                                              const float* invstd, float* dgamma, float* dbeta, float* coef) {
  const double inv = invstd[c];
  const double db = sdy, dg = sdyx * inv;
  dbeta[c] = (float)db;
  dgamma[c] = (float)dg;
  coef[3 * c] = (float)((double)gamma[c] * inv);
  coef[3 * c + 1] = (float)(db / M);
  coef[3 * c + 2] = (float)(dg / M * inv);
}

// input_grad writes dx and, with RES, the shortcut gradient dz: the masked gradient read back through the
// shortcut mapping. With a strided shortcut each output position owns an s x s block of dz whose top-left
// element it reads; the rest of the block gets 0, so every element of dz is written exactly once.
template <bool RELU, bool RES>
__device__ __forceinline__ void input_grad(const float* x, const float* y, const float* dy, const float* mean,
                                           const float* coef, float* dx, float* dz, int N, int C, int H, int W,
                                           int Cz, int zs) {
  const long long total = (long long)N * C * H * W;
  const long long stride = rn::grid_stride();
  long long i = rn::grid_start();
  if (i >= total) return;
  rn::Walk4 p;
  p.init(i, stride, C, H, W);
  const rn::Shortcut sc(C, H, W, Cz, zs);
  for (; i < total; i += stride, p.next()) {
    const int c = p.c;
    float g = dy[i];
    if (RELU && !(y[i] > 0.f)) g = 0.f;
    const float k = coef[3 * c], a = coef[3 * c + 1], b = coef[3 * c + 2];
    dx[i] = k * (g - a - (x[i] - mean[c]) * b);
    if (RES) {
      if (sc.identity) {
        dz[i] = g;
      } else {
        const long long zi = sc.index(p.n, c, p.h, p.w);
        if (zi >= 0) {
          for (int r = 0; r < sc.s; r++) {
            for (int q = 0; q < sc.s; q++) dz[zi + (long long)r * sc.Wz + q] = (r | q) ? 0.f : g;
          }
        }
      }
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Training forward, fused. Grid (chunks, C).

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_forward_stats(const float* x, int N, int C, int HW, int chunks, double* partial, unsigned int* counters,
                     float eps, float momentum, const float* gamma, float* save_mean, float* save_invstd,
                     float* run_mean, float* run_var, float* scale) {
  __shared__ double shared[2 * RN_WARPS];
  const int c = blockIdx.y;
  const double K = x[(long long)c * HW];
  double s1, s2;
  stats_chunk(x, N, C, HW, chunks, K, s1, s2, shared);
  if (!last_block(s1, s2, partial, counters, chunks)) return;
  if (threadIdx.x == 0) {
    sum_partials(partial, c, chunks, s1, s2);
    finalize_stats(c, s1, s2, (double)N * HW, K, eps, momentum, gamma, save_mean, save_invstd, run_mean, run_var,
                   scale);
  }
}

// Training apply, fused: mean is the saved mean, scale = gamma*invstd from bn_forward_stats. Grid-stride.

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_forward_apply(const float* x, const float* z, float* y, const float* mean, const float* scale,
                     const float* beta, int N, int C, int H, int W, int Cz, int zs) {
  apply<false, false, false>(x, z, y, mean, scale, nullptr, beta, 0.f, N, C, H, W, Cz, zs);
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_forward_apply_relu(const float* x, const float* z, float* y, const float* mean, const float* scale,
                          const float* beta, int N, int C, int H, int W, int Cz, int zs) {
  apply<true, false, false>(x, z, y, mean, scale, nullptr, beta, 0.f, N, C, H, W, Cz, zs);
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_forward_apply_add(const float* x, const float* z, float* y, const float* mean, const float* scale,
                         const float* beta, int N, int C, int H, int W, int Cz, int zs) {
  apply<false, true, false>(x, z, y, mean, scale, nullptr, beta, 0.f, N, C, H, W, Cz, zs);
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_forward_apply_add_relu(const float* x, const float* z, float* y, const float* mean, const float* scale,
                              const float* beta, int N, int C, int H, int W, int Cz, int zs) {
  apply<true, true, false>(x, z, y, mean, scale, nullptr, beta, 0.f, N, C, H, W, Cz, zs);
}

// Training forward, unfused: partial sums, then one thread per channel finalizes, then bn_normalize.

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_stats_partial(const float* x, int N, int C, int HW, int chunks, double* partial) {
  __shared__ double shared[2 * RN_WARPS];
  const int c = blockIdx.y;
  const double K = x[(long long)c * HW];
  double s1, s2;
  stats_chunk(x, N, C, HW, chunks, K, s1, s2, shared);
  if (threadIdx.x == 0) {
    double* p = partial + 2LL * (c * (long long)chunks + blockIdx.x);
    p[0] = s1;
    p[1] = s2;
  }
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_stats_finalize(const float* x, const double* partial, int C, int HW, int chunks, long long count, float eps,
                      float momentum, const float* gamma, float* save_mean, float* save_invstd, float* run_mean,
                      float* run_var, float* scale) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  double s1, s2;
  sum_partials(partial, c, chunks, s1, s2);
  finalize_stats(c, s1, s2, (double)count, (double)x[(long long)c * HW], eps, momentum, gamma, save_mean,
                 save_invstd, run_mean, run_var, scale);
}

// bn_normalize is the plain batch-norm output y = (x - mean)*scale + beta (no shortcut, no ReLU).
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_normalize(const float* x, float* y, const float* mean, const float* scale, const float* beta, int N, int C,
                 int H, int W) {
  apply<false, false, false>(x, nullptr, y, mean, scale, nullptr, beta, 0.f, N, C, H, W, C, 1);
}

// residual_add adds the shortcut of z into y in place: y += shortcut(z).
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    residual_add(float* y, const float* z, int N, int C, int H, int W, int Cz, int zs) {
  const long long total = (long long)N * C * H * W;
  const long long stride = rn::grid_stride();
  long long i = rn::grid_start();
  if (i >= total) return;
  rn::Walk4 p;
  p.init(i, stride, C, H, W);
  const rn::Shortcut sc(C, H, W, Cz, zs);
  for (; i < total; i += stride, p.next()) {
    const long long zi = sc.identity ? i : sc.index(p.n, p.c, p.h, p.w);
    if (zi >= 0) y[i] += z[zi];
  }
}

// relu_forward writes y = max(x, 0) (x may be y); NaN stays NaN.
extern "C" __global__ void __launch_bounds__(RN_BLOCK) relu_forward(const float* x, float* y, long long n) {
  const long long stride = rn::grid_stride();
  for (long long i = rn::grid_start(); i < n; i += stride) {
    const float v = x[i];
    y[i] = v < 0.f ? 0.f : v;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Inference forward, fused: one pass, scale = inference_scale(gamma, running_var, eps) computed per element.

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_inference_apply(const float* x, const float* z, float* y, const float* run_mean, const float* run_var,
                       const float* gamma, const float* beta, float eps, int N, int C, int H, int W, int Cz,
                       int zs) {
  apply<false, false, true>(x, z, y, run_mean, run_var, gamma, beta, eps, N, C, H, W, Cz, zs);
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_inference_apply_relu(const float* x, const float* z, float* y, const float* run_mean, const float* run_var,
                            const float* gamma, const float* beta, float eps, int N, int C, int H, int W, int Cz,
                            int zs) {
  apply<true, false, true>(x, z, y, run_mean, run_var, gamma, beta, eps, N, C, H, W, Cz, zs);
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_inference_apply_add(const float* x, const float* z, float* y, const float* run_mean, const float* run_var,
                           const float* gamma, const float* beta, float eps, int N, int C, int H, int W, int Cz,
                           int zs) {
  apply<false, true, true>(x, z, y, run_mean, run_var, gamma, beta, eps, N, C, H, W, Cz, zs);
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_inference_apply_add_relu(const float* x, const float* z, float* y, const float* run_mean,
                                const float* run_var, const float* gamma, const float* beta, float eps, int N,
                                int C, int H, int W, int Cz, int zs) {
  apply<true, true, true>(x, z, y, run_mean, run_var, gamma, beta, eps, N, C, H, W, Cz, zs);
}

// Inference forward, unfused: scale = inference_scale(gamma, running_var, eps) per channel, then
// bn_normalize with mean = the running mean.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_inference_params(const float* run_var, const float* gamma, float eps, int C, float* scale) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  scale[c] = inference_scale(gamma[c], run_var[c], eps);
}

// ---------------------------------------------------------------------------------------------------------
// Backward, fused. bn_backward_reduce*: grid (chunks, C); the last block of a channel writes dgamma, dbeta
// and the dx coefficients.

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_backward_reduce(const float* x, const float* y, const float* dy, const float* mean, int N, int C, int HW,
                       int chunks, double* partial, unsigned int* counters, const float* gamma, const float* invstd,
                       float* dgamma, float* dbeta, float* coef) {
  __shared__ double shared[2 * RN_WARPS];
  double s1, s2;
  grad_chunk<false>(x, y, dy, mean, N, C, HW, chunks, s1, s2, shared);
  if (!last_block(s1, s2, partial, counters, chunks)) return;
  if (threadIdx.x == 0) {
    const int c = blockIdx.y;
    sum_partials(partial, c, chunks, s1, s2);
    finalize_grad(c, s1, s2, (double)N * HW, gamma, invstd, dgamma, dbeta, coef);
  }
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_backward_reduce_relu(const float* x, const float* y, const float* dy, const float* mean, int N, int C,
                            int HW, int chunks, double* partial, unsigned int* counters, const float* gamma,
                            const float* invstd, float* dgamma, float* dbeta, float* coef) {
  __shared__ double shared[2 * RN_WARPS];
  double s1, s2;
  grad_chunk<true>(x, y, dy, mean, N, C, HW, chunks, s1, s2, shared);
  if (!last_block(s1, s2, partial, counters, chunks)) return;
  if (threadIdx.x == 0) {
    const int c = blockIdx.y;
    sum_partials(partial, c, chunks, s1, s2);
    finalize_grad(c, s1, s2, (double)N * HW, gamma, invstd, dgamma, dbeta, coef);
  }
}

// bn_backward_dx*: grid-stride; dx from the coefficients, and dz (written, never accumulated) with _add.

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_backward_dx(const float* x, const float* y, const float* dy, const float* mean, const float* coef, float* dx,
                   float* dz, int N, int C, int H, int W, int Cz, int zs) {
  input_grad<false, false>(x, y, dy, mean, coef, dx, dz, N, C, H, W, Cz, zs);
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_backward_dx_relu(const float* x, const float* y, const float* dy, const float* mean, const float* coef,
                        float* dx, float* dz, int N, int C, int H, int W, int Cz, int zs) {
  input_grad<true, false>(x, y, dy, mean, coef, dx, dz, N, C, H, W, Cz, zs);
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_backward_dx_add(const float* x, const float* y, const float* dy, const float* mean, const float* coef,
                       float* dx, float* dz, int N, int C, int H, int W, int Cz, int zs) {
  input_grad<false, true>(x, y, dy, mean, coef, dx, dz, N, C, H, W, Cz, zs);
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_backward_dx_add_relu(const float* x, const float* y, const float* dy, const float* mean, const float* coef,
                            float* dx, float* dz, int N, int C, int H, int W, int Cz, int zs) {
  input_grad<true, true>(x, y, dy, mean, coef, dx, dz, N, C, H, W, Cz, zs);
}

// Backward, unfused.

// relu_backward writes gy = dy where y > 0, else 0.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    relu_backward(const float* y, const float* dy, float* gy, long long n) {
  const long long stride = rn::grid_stride();
  for (long long i = rn::grid_start(); i < n; i += stride) gy[i] = y[i] > 0.f ? dy[i] : 0.f;
}

// residual_backward writes dz = shortcut^T(gy): each element of z (N, Cz, H*zs, W*zs) gets the gradient of
// the output that reads it, or 0 when no output does.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    residual_backward(const float* gy, float* dz, int N, int C, int H, int W, int Cz, int zs) {
  const int Hz = H * zs, Wz = W * zs, off = (C - Cz) / 2;
  const long long total = (long long)N * Cz * Hz * Wz;
  const long long stride = rn::grid_stride();
  long long i = rn::grid_start();
  if (i >= total) return;
  rn::Walk4 p;
  p.init(i, stride, Cz, Hz, Wz);
  for (; i < total; i += stride, p.next()) {
    float g = 0.f;
    if (p.h % zs == 0 && p.w % zs == 0) {
      g = gy[(((long long)p.n * C + p.c + off) * H + p.h / zs) * W + p.w / zs];
    }
    dz[i] = g;
  }
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_backward_reduce_partial(const float* x, const float* dy, const float* mean, int N, int C, int HW, int chunks,
                               double* partial) {
  __shared__ double shared[2 * RN_WARPS];
  double s1, s2;
  grad_chunk<false>(x, nullptr, dy, mean, N, C, HW, chunks, s1, s2, shared);
  if (threadIdx.x == 0) {
    double* p = partial + 2LL * (blockIdx.y * (long long)chunks + blockIdx.x);
    p[0] = s1;
    p[1] = s2;
  }
}

extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_backward_finalize(const double* partial, int C, int chunks, long long count, const float* gamma,
                         const float* invstd, float* dgamma, float* dbeta, float* coef) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  double s1, s2;
  sum_partials(partial, c, chunks, s1, s2);
  finalize_grad(c, s1, s2, (double)count, gamma, invstd, dgamma, dbeta, coef);
}

// bn_backward_input is dx alone from an already masked gradient gy.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_backward_input(const float* x, const float* gy, const float* mean, const float* coef, float* dx, int N, int C,
                      int H, int W) {
  input_grad<false, false>(x, nullptr, gy, mean, coef, dx, nullptr, N, C, H, W, C, 1);
}
