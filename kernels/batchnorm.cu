// Batch normalisation over (N, H, W) per channel, training and inference, forward and backward, with the
// optional fused residual add (identity or option-A shortcut) and ReLU of backend.BatchNormParams:
//
//   y = relu((x - mean) * gamma * invstd + beta + shortcut(z))
//
// Statistics: each channel's N*H*W positions are cut into `chunks` contiguous pieces; block (chunk, tile)
// sums its piece of each channel of a tile of consecutive channels in double (shifted by the channel's
// first value so the variance does not cancel) and the pieces are added in chunk order. No float atomics
// anywhere: every result is bit-for-bit reproducible.
//
// The order of a block's sum is fixed by the positions alone: slot u of warp w adds the positions
// j0 + 32w + u + 256m in order of m, the 32 slots of a warp are added in warp_sum's tree and the warps' sums
// in a fixed tree (rn::tile_warp_sum, rn::tile_block_sum2). Only the reading differs between the layouts
// (rn::ChannelTile): in NCHW a tile is one channel and lane u reads slot u, 32 consecutive positions; in
// NHWC a tile is the 8 (float) or 16 (bf16, f16) channels of one 32-byte sector, and lane r*Width + i keeps
// channel i's slots r, r + Rows, r + 2*Rows, ... in registers, so every load of a warp reads Rows whole
// sectors where reading one channel per warp would touch 32 sectors for 64 or 128 useful bytes. The
// launchers cut both layouts into the same chunks, so NHWC gives the bits of NCHW.
//
// Activation formats (docs/decisions/0006-activation-formats.md): the activations x, y, z, dy, dx, dz and
// gy hold float, bf16 or f16 in NCHW or NHWC; the per-channel operands are float. Every kernel is a
// template on the element type and the layout, instantiated by RN_ACT_FORMATS (common.cuh): the float NCHW
// kernel has the plain name, the others a suffix, e.g. bn_forward_apply_relu_bf16_nhwc. Elements are
// loaded as float and the math is the same code in every format; a result is rounded to the element type
// where it is stored. A channel's positions are summed in the same order in both layouts (above), so NHWC
// gives the bits of NCHW in every type. relu_forward and relu_backward are element-wise and come per type
// only (RN_ACT_DTYPES).
//
// The fused and unfused paths give the same bits too: each step of the math is one piece of code that
// both paths run (the apply, grad_chunk and input_grad templates, finalize_stats, finalize_grad,
// inference_scale), so the compiler rounds and contracts it alike in both; in a 16-bit type the fused
// apply rounds (rn::round_to) wherever the unfused path stores y between kernels; and the kernels are built
// without fast math (Makefile NVCCFLAGS: no flushed subnormals, correctly rounded division and square
// root; see docs/decisions/0005-cuda-determinism.md).
//
// Fused path (backend.Options.Unfused false):
//   training forward   bn_forward_stats (statistics; the last block of each tile finalizes them)
//                      + bn_forward_apply[_relu|_add|_add_relu]
//   inference forward  bn_inference_apply[_relu|_add|_add_relu] (one pass, running statistics inline)
//   backward           bn_backward_reduce[_relu] (dgamma, dbeta; last block finalizes)
//                      + bn_backward_dx[_relu|_add|_add_relu] (dx and the shortcut gradient dz)
// Synchronised (backend.BatchNormParams.Sync), the op cut in two around the exchange, in both paths:
//   training forward   bn_sync_stats (this rank's count, mean and M2 into its slot) | exchange |
//                      bn_sync_finalize (the slots merged in rank order) + the path's apply kernels
//   backward           bn_sync_grad_reduce (this rank's sums and count) | exchange |
//                      bn_sync_grad_finalize + the path's dx kernels
// Unfused path, the same math one step per kernel:
//   training forward   bn_stats_partial + bn_stats_finalize + bn_normalize [+ residual_add] [+ relu_forward]
//   inference forward  bn_inference_params + bn_normalize [+ residual_add] [+ relu_forward]
//   backward           [relu_backward] [+ residual_backward] + bn_backward_reduce_partial
//                      + bn_backward_finalize + bn_backward_input

#include "common.cuh"

namespace {

// ChunkIter walks the positions [j0, j1) of channel c of an NCHW tensor, position j being element j % HW of
// image j / HW, one RN_BLOCK-wide step per iteration from j0 + threadIdx.x (slot threadIdx.x of
// chunk_partials); off is the element offset of the current position in the tensor.
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
    off += doff;
    i += di;
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

// tile_channel is the channel this thread reduces: channel i = lane % Width of the block's tile blockIdx.y
// (rn::ChannelTile). It may be C or more in the last tile; such threads add nothing.
template <typename T, rn::Layout L>
__device__ __forceinline__ int tile_channel() {
  constexpr int Width = rn::ChannelTile<T, L>::Width;
  return blockIdx.y * Width + (threadIdx.x & 31) % Width;
}

// chunk_partials sums the two values term(off, s1, s2) adds for each element of this block's piece of its
// tile's channels (off the element's offset, in this thread's channel c) and writes each channel's pair
// to partial[c][chunk]. Slot u of warp w holds the positions j0 + 32w + u + RN_BLOCK*m (rn::tile_warp_sum):
// NCHW reads them through ChunkIter, NHWC at j*C + c, Rows positions of Width channels per load.
template <typename T, rn::Layout L, typename F>
__device__ __forceinline__ void chunk_partials(int c, int N, int C, int HW, int chunks, double* partial, F term) {
  constexpr int Width = rn::ChannelTile<T, L>::Width, Rows = rn::ChannelTile<T, L>::Rows;
  __shared__ double shared[2 * Width * RN_WARPS];
  long long j0, j1;
  chunk_range((long long)N * HW, blockIdx.x, chunks, j0, j1);
  double s1[Width], s2[Width];
#pragma unroll
  for (int k = 0; k < Width; k++) s1[k] = s2[k] = 0;
  if (c < C) {
    if (L == rn::NCHW) {
      for (ChunkIter it(c, C, HW, j0, j1); it.more(); it.next()) term(it.off, s1[0], s2[0]);
    } else {
      const int lane = threadIdx.x & 31;
      for (long long j = j0 + (threadIdx.x - lane) + lane / Width; j < j1; j += RN_BLOCK) {
#pragma unroll
        for (int k = 0; k < Width; k++) {
          const long long jk = j + Rows * k;
          if (jk < j1) term(jk * C + c, s1[k], s2[k]);
        }
      }
    }
  }
  rn::tile_warp_sum(s1);
  rn::tile_warp_sum(s2);
  rn::tile_block_sum2<Width>(s1[0], s2[0], shared, [&](int i, double a, double b) {
    const long long ci = (long long)blockIdx.y * Width + i;
    if (ci >= C) return;
    double* p = partial + 2 * (ci * chunks + blockIdx.x);
    p[0] = a;
    p[1] = b;
  });
}

// channel_shift is K, the first value of channel c, by which the statistics are shifted.
template <typename T, rn::Layout L>
__device__ __forceinline__ double channel_shift(const T* x, int c, int C, int HW) {
  return rn::to_f32(x[rn::plane_start<L>(0, c, C, HW)]);
}

// stats_chunk writes the partial sums of (x - K) and (x - K)^2 of this block's piece of each channel of its
// tile, K (this thread's) being the first value of channel c.
template <typename T, rn::Layout L>
__device__ __forceinline__ void stats_chunk(const T* x, int c, int N, int C, int HW, int chunks, double K,
                                            double* partial) {
  chunk_partials<T, L>(c, N, C, HW, chunks, partial, [&](long long off, double& s1, double& s2) {
    const double d = (double)rn::to_f32(x[off]) - K;
    s1 += d;
    s2 += d * d;
  });
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

// write_stats writes what a training forward keeps of channel c's mean and biased variance over M values.
__device__ __forceinline__ void write_stats(int c, double mean, double var, double M, float eps, float momentum,
                                            const float* gamma, float* save_mean, float* save_invstd,
                                            float* run_mean, float* run_var, float* scale) {
  const double invstd = 1.0 / sqrt(var + (double)eps);
  const double mom = momentum;
  save_mean[c] = (float)mean;
  save_invstd[c] = (float)invstd;
  run_mean[c] = (float)((1 - mom) * (double)run_mean[c] + mom * mean);
  run_var[c] = (float)((1 - mom) * (double)run_var[c] + mom * var * M / (M - 1));
  scale[c] = (float)((double)gamma[c] * invstd);
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
  write_stats(c, K + dmean, var, M, eps, momentum, gamma, save_mean, save_invstd, run_mean, run_var, scale);
}

// last_block reports (to every thread) whether this block was the last of its tile's chunks to publish
// its partial sums; the last one resets the tile's counter for the next launch.
__device__ __forceinline__ bool last_block(unsigned int* counters, int chunks) {
  __shared__ bool last;
  __threadfence();  // the partials this thread wrote are visible to every block before the count says so
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned int done = atomicAdd(&counters[blockIdx.y], 1u);
    last = done == (unsigned int)(chunks - 1);
    if (last) counters[blockIdx.y] = 0;
  }
  __syncthreads();
  return last;
}

// tile_stats sums this block's piece of its tile's channels (stats_chunk) and, in the tile's last block,
// gives each thread of a channel of the tile that channel c's shifted sums s1, s2 and its shift K: true
// for those threads, false for every other.
template <typename T, rn::Layout L>
__device__ __forceinline__ bool tile_stats(const T* x, int N, int C, int HW, int chunks, double* partial,
                                           unsigned int* counters, int& c, double& K, double& s1, double& s2) {
  c = tile_channel<T, L>();
  K = c < C ? channel_shift<T, L>(x, c, C, HW) : 0;
  stats_chunk<T, L>(x, c, N, C, HW, chunks, K, partial);
  if (!last_block(counters, chunks) || !(threadIdx.x < rn::ChannelTile<T, L>::Width && c < C)) return false;
  sum_partials(partial, c, chunks, s1, s2);
  return true;
}

// inference_scale is the inference path's gamma/sqrt(running_var + eps), each operation correctly rounded
// in float: bn_inference_params computes it once per channel, the fused inference kernels once per
// element, and both get the same bits (float, not double: the fused kernels run it per element, and
// double division and square root are slow on GPUs without full-rate double).
__device__ __forceinline__ float inference_scale(float gamma, float run_var, float eps) {
  return __fdiv_rn(gamma, __fsqrt_rn(__fadd_rn(run_var, eps)));
}

// residual_sum is y + z rounded to T: the residual add of both paths.
template <typename T>
__device__ __forceinline__ float residual_sum(float y, T z) {
  return rn::round_to<T>(y + rn::to_f32(z));
}

// relu_of is max(v, 0) with NaN staying NaN, as in the CPU reference.
__device__ __forceinline__ float relu_of(float v) { return v < 0.f ? 0.f : v; }

// apply writes y = act((x - mean)*scale + beta [+ shortcut(z)]). INFER takes scale from the running
// variance (scale_or_var holds it) through inference_scale instead of a precomputed per-channel scale.
// The rounding to T after each step is what bn_normalize and residual_add store.
template <typename T, rn::Layout L, bool RELU, bool RES, bool INFER>
__device__ __forceinline__ void apply(const T* x, const T* z, T* y, const float* mean, const float* scale_or_var,
                                      const float* gamma, const float* beta, float eps, int N, int C, int H, int W,
                                      int Cz, int zs) {
  const rn::Shortcut<L> sc(C, H, W, Cz, zs);
  rn::grid_walk<L>(N, C, H, W, [&](long long i, const rn::WalkAct<L>& p) {
    const int c = p.c();
    float s;
    if (INFER) {
      s = inference_scale(gamma[c], scale_or_var[c], eps);
    } else {
      s = scale_or_var[c];
    }
    float v = rn::round_to<T>((rn::to_f32(x[i]) - mean[c]) * s + beta[c]);
    if (RES) {
      if (sc.identity) {
        v = residual_sum<T>(v, z[i]);
      } else {
        const long long zi = sc.index(p.n(), c, p.h(), p.w());
        if (zi >= 0) v = residual_sum<T>(v, z[zi]);
      }
    }
    if (RELU) v = relu_of(v);
    y[i] = rn::from_f32<T>(v);
  });
}

// grad_chunk writes the partial sums of gy and gy*(x - mean) of this block's piece of each channel of its
// tile, gy being dy masked by y > 0 when RELU.
template <typename T, rn::Layout L, bool RELU>
__device__ __forceinline__ void grad_chunk(const T* x, const T* y, const T* dy, const float* mean, int c, int N,
                                           int C, int HW, int chunks, double* partial) {
  const double m = c < C ? mean[c] : 0;
  chunk_partials<T, L>(c, N, C, HW, chunks, partial, [&](long long off, double& s1, double& s2) {
    float g = rn::to_f32(dy[off]);
    if (RELU && !(rn::to_f32(y[off]) > 0.f)) g = 0.f;
    const double gd = g;
    s1 += gd;
    s2 += gd * ((double)rn::to_f32(x[off]) - m);
  });
}

// tile_grad_sums is tile_stats for the backward: this block's piece of the sums of gy and gy*(x - mean)
// (grad_chunk) and, in the tile's last block, channel c's sums to the threads of the tile's channels.
template <typename T, rn::Layout L, bool RELU>
__device__ __forceinline__ bool tile_grad_sums(const T* x, const T* y, const T* dy, const float* mean, int N, int C,
                                               int HW, int chunks, double* partial, unsigned int* counters, int& c,
                                               double& s1, double& s2) {
  c = tile_channel<T, L>();
  grad_chunk<T, L, RELU>(x, y, dy, mean, c, N, C, HW, chunks, partial);
  if (!last_block(counters, chunks) || !(threadIdx.x < rn::ChannelTile<T, L>::Width && c < C)) return false;
  sum_partials(partial, c, chunks, s1, s2);
  return true;
}

// finalize_grad writes dbeta = sum gy and dgamma = sum gy*xhat of channel c, and the coefficients of
// dx = k*(gy - a - (x - mean)*b): k = gamma*invstd, a = dbeta/M, b = dgamma*invstd/M.
// A synchronised backward writes dgamma and dbeta divided by share, the world size
// (backend.BatchNormSyncer); share is 1 otherwise.
__device__ __forceinline__ void finalize_grad(int c, double sdy, double sdyx, double M, double share,
                                              const float* gamma, const float* invstd, float* dgamma, float* dbeta,
                                              float* coef) {
  const double inv = invstd[c];
  const double db = sdy, dg = sdyx * inv;
  dbeta[c] = (float)(db / share);
  dgamma[c] = (float)(dg / share);
  coef[3 * c] = (float)((double)gamma[c] * inv);
  coef[3 * c + 1] = (float)(db / M);
  coef[3 * c + 2] = (float)(dg / M * inv);
}

// input_grad writes dx and, with RES, the shortcut gradient dz: the masked gradient read back through the
// shortcut mapping. With a strided shortcut each output position owns an s x s block of dz whose top-left
// element it reads; the rest of the block gets 0, so every element of dz is written exactly once.
template <typename T, rn::Layout L, bool RELU, bool RES>
__device__ __forceinline__ void input_grad(const T* x, const T* y, const T* dy, const float* mean,
                                           const float* coef, T* dx, T* dz, int N, int C, int H, int W, int Cz,
                                           int zs) {
  const rn::Shortcut<L> sc(C, H, W, Cz, zs);
  rn::grid_walk<L>(N, C, H, W, [&](long long i, const rn::WalkAct<L>& p) {
    const int c = p.c();
    float g = rn::to_f32(dy[i]);
    if (RELU && !(rn::to_f32(y[i]) > 0.f)) g = 0.f;
    const float k = coef[3 * c], a = coef[3 * c + 1], b = coef[3 * c + 2];
    dx[i] = rn::from_f32<T>(k * (g - a - (rn::to_f32(x[i]) - mean[c]) * b));
    if (RES) {
      if (sc.identity) {
        dz[i] = rn::from_f32<T>(g);
      } else {
        const long long zi = sc.index(p.n(), c, p.h(), p.w());
        if (zi >= 0) {
          for (int r = 0; r < sc.s; r++) {
            for (int q = 0; q < sc.s; q++) dz[zi + sc.step(r, q)] = rn::from_f32<T>((r | q) ? 0.f : g);
          }
        }
      }
    }
  });
}

// shortcut_add adds the shortcut of z into y in place: y += shortcut(z) (residual_add).
template <typename T, rn::Layout L>
__device__ __forceinline__ void shortcut_add(T* y, const T* z, int N, int C, int H, int W, int Cz, int zs) {
  const rn::Shortcut<L> sc(C, H, W, Cz, zs);
  rn::grid_walk<L>(N, C, H, W, [&](long long i, const rn::WalkAct<L>& p) {
    const long long zi = sc.identity ? i : sc.index(p.n(), p.c(), p.h(), p.w());
    if (zi >= 0) y[i] = rn::from_f32<T>(residual_sum<T>(rn::to_f32(y[i]), z[zi]));
  });
}

// shortcut_grad writes dz = shortcut^T(gy) (residual_backward): each element of z (N, Cz, H*zs, W*zs)
// gets the gradient of the output that reads it, or 0 when no output does.
template <typename T, rn::Layout L>
__device__ __forceinline__ void shortcut_grad(const T* gy, T* dz, int N, int C, int H, int W, int Cz, int zs) {
  const int Hz = H * zs, Wz = W * zs, off = (C - Cz) / 2;
  rn::grid_walk<L>(N, Cz, Hz, Wz, [&](long long i, const rn::WalkAct<L>& p) {
    T g = rn::from_f32<T>(0.f);
    if (p.h() % zs == 0 && p.w() % zs == 0) {
      g = gy[rn::act_index<L>(p.n(), p.c() + off, p.h() / zs, p.w() / zs, C, H, W)];
    }
    dz[i] = g;
  });
}

}  // namespace

// The kernels below are written once as macros of (name, T, L, ...) and instantiated for every format by
// RN_ACT_FORMATS (RN_ACT_DTYPES for the element-wise ReLU kernels).

// ---------------------------------------------------------------------------------------------------------
// Training forward, fused. Grid (chunks, tiles): tiles = ceil(C / rn::ChannelTile<T, L>::Width).

#define BN_FORWARD_STATS(name, T, L, ...)                                                                    \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                     \
      name(const T* x, int N, int C, int HW, int chunks, double* partial, unsigned int* counters, float eps, \
           float momentum, const float* gamma, float* save_mean, float* save_invstd, float* run_mean,        \
           float* run_var, float* scale) {                                                                   \
    int c;                                                                                                   \
    double K, s1, s2;                                                                                        \
    if (!tile_stats<T, L>(x, N, C, HW, chunks, partial, counters, c, K, s1, s2)) return;                     \
    finalize_stats(c, s1, s2, (double)N * HW, K, eps, momentum, gamma, save_mean, save_invstd, run_mean,     \
                   run_var, scale);                                                                          \
  }
RN_ACT_FORMATS(BN_FORWARD_STATS, bn_forward_stats, )

// Training apply, fused: mean is the saved mean, scale = gamma*invstd from bn_forward_stats. Grid-stride.

#define BN_FORWARD_APPLY(name, T, L, RELU, RES)                                                           \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                  \
      name(const T* x, const T* z, T* y, const float* mean, const float* scale, const float* beta, int N, \
           int C, int H, int W, int Cz, int zs) {                                                         \
    apply<T, L, RELU, RES, false>(x, z, y, mean, scale, nullptr, beta, 0.f, N, C, H, W, Cz, zs);          \
  }
RN_ACT_FORMATS(BN_FORWARD_APPLY, bn_forward_apply, false, false)
RN_ACT_FORMATS(BN_FORWARD_APPLY, bn_forward_apply_relu, true, false)
RN_ACT_FORMATS(BN_FORWARD_APPLY, bn_forward_apply_add, false, true)
RN_ACT_FORMATS(BN_FORWARD_APPLY, bn_forward_apply_add_relu, true, true)

// Training forward, unfused: partial sums, then one thread per channel finalizes, then bn_normalize.

#define BN_STATS_PARTIAL(name, T, L, ...)                                                             \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                              \
      name(const T* x, int N, int C, int HW, int chunks, double* partial) {                           \
    const int c = tile_channel<T, L>();                                                               \
    stats_chunk<T, L>(x, c, N, C, HW, chunks, c < C ? channel_shift<T, L>(x, c, C, HW) : 0, partial); \
  }
RN_ACT_FORMATS(BN_STATS_PARTIAL, bn_stats_partial, )

#define BN_STATS_FINALIZE(name, T, L, ...)                                                            \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                              \
      name(const T* x, const double* partial, int C, int HW, int chunks, long long count, float eps,  \
           float momentum, const float* gamma, float* save_mean, float* save_invstd, float* run_mean, \
           float* run_var, float* scale) {                                                            \
    const int c = blockIdx.x * blockDim.x + threadIdx.x;                                              \
    if (c >= C) return;                                                                               \
    double s1, s2;                                                                                    \
    sum_partials(partial, c, chunks, s1, s2);                                                         \
    finalize_stats(c, s1, s2, (double)count, channel_shift<T, L>(x, c, C, HW), eps, momentum, gamma,  \
                   save_mean, save_invstd, run_mean, run_var, scale);                                 \
  }
RN_ACT_FORMATS(BN_STATS_FINALIZE, bn_stats_finalize, )

// bn_normalize is the plain batch-norm output y = (x - mean)*scale + beta (no shortcut, no ReLU).
#define BN_NORMALIZE(name, T, L, ...)                                                                       \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                    \
      name(const T* x, T* y, const float* mean, const float* scale, const float* beta, int N, int C, int H, \
           int W) {                                                                                         \
    apply<T, L, false, false, false>(x, nullptr, y, mean, scale, nullptr, beta, 0.f, N, C, H, W, C, 1);     \
  }
RN_ACT_FORMATS(BN_NORMALIZE, bn_normalize, )

#define RESIDUAL_ADD(name, T, L, ...)                                      \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                   \
      name(T* y, const T* z, int N, int C, int H, int W, int Cz, int zs) { \
    shortcut_add<T, L>(y, z, N, C, H, W, Cz, zs);                          \
  }
RN_ACT_FORMATS(RESIDUAL_ADD, residual_add, )

// relu_forward writes y = max(x, 0) (x may be y); NaN stays NaN.
#define RELU_FORWARD(name, T, L, ...)                                                          \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK) name(const T* x, T* y, long long n) { \
    const long long stride = rn::grid_stride();                                                \
    for (long long i = rn::grid_start(); i < n; i += stride) {                                 \
      y[i] = rn::from_f32<T>(relu_of(rn::to_f32(x[i])));                                       \
    }                                                                                          \
  }
RN_ACT_DTYPES(RELU_FORWARD, relu_forward, )

// ---------------------------------------------------------------------------------------------------------
// Inference forward, fused: one pass, scale = inference_scale(gamma, running_var, eps) computed per element.

#define BN_INFERENCE_APPLY(name, T, L, RELU, RES)                                                         \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                  \
      name(const T* x, const T* z, T* y, const float* run_mean, const float* run_var, const float* gamma, \
           const float* beta, float eps, int N, int C, int H, int W, int Cz, int zs) {                    \
    apply<T, L, RELU, RES, true>(x, z, y, run_mean, run_var, gamma, beta, eps, N, C, H, W, Cz, zs);       \
  }
RN_ACT_FORMATS(BN_INFERENCE_APPLY, bn_inference_apply, false, false)
RN_ACT_FORMATS(BN_INFERENCE_APPLY, bn_inference_apply_relu, true, false)
RN_ACT_FORMATS(BN_INFERENCE_APPLY, bn_inference_apply_add, false, true)
RN_ACT_FORMATS(BN_INFERENCE_APPLY, bn_inference_apply_add_relu, true, true)

// Inference forward, unfused: scale = inference_scale(gamma, running_var, eps) per channel, then
// bn_normalize with mean = the running mean. Only per-channel operands: one kernel for every format.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_inference_params(const float* run_var, const float* gamma, float eps, int C, float* scale) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  scale[c] = inference_scale(gamma[c], run_var[c], eps);
}

// ---------------------------------------------------------------------------------------------------------
// Backward, fused. bn_backward_reduce*: grid (chunks, tiles); the last block of a tile writes dgamma,
// dbeta and the dx coefficients of its channels.

#define BN_BACKWARD_REDUCE(name, T, L, RELU)                                                                \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                    \
      name(const T* x, const T* y, const T* dy, const float* mean, int N, int C, int HW, int chunks,        \
           double* partial, unsigned int* counters, const float* gamma, const float* invstd, float* dgamma, \
           float* dbeta, float* coef) {                                                                     \
    int c;                                                                                                  \
    double s1, s2;                                                                                          \
    if (!tile_grad_sums<T, L, RELU>(x, y, dy, mean, N, C, HW, chunks, partial, counters, c, s1, s2)) return; \
    finalize_grad(c, s1, s2, (double)N * HW, 1.0, gamma, invstd, dgamma, dbeta, coef);                      \
  }
RN_ACT_FORMATS(BN_BACKWARD_REDUCE, bn_backward_reduce, false)
RN_ACT_FORMATS(BN_BACKWARD_REDUCE, bn_backward_reduce_relu, true)

// bn_backward_dx*: grid-stride; dx from the coefficients, and dz (written, never accumulated) with _add.

#define BN_BACKWARD_DX(name, T, L, RELU, RES)                                                              \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                   \
      name(const T* x, const T* y, const T* dy, const float* mean, const float* coef, T* dx, T* dz, int N, \
           int C, int H, int W, int Cz, int zs) {                                                          \
    input_grad<T, L, RELU, RES>(x, y, dy, mean, coef, dx, dz, N, C, H, W, Cz, zs);                         \
  }
RN_ACT_FORMATS(BN_BACKWARD_DX, bn_backward_dx, false, false)
RN_ACT_FORMATS(BN_BACKWARD_DX, bn_backward_dx_relu, true, false)
RN_ACT_FORMATS(BN_BACKWARD_DX, bn_backward_dx_add, false, true)
RN_ACT_FORMATS(BN_BACKWARD_DX, bn_backward_dx_add_relu, true, true)

// Backward, unfused.

// relu_backward writes gy = dy where y > 0, else 0.
#define RELU_BACKWARD(name, T, L, ...)                                                                       \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK) name(const T* y, const T* dy, T* gy, long long n) { \
    const long long stride = rn::grid_stride();                                                              \
    for (long long i = rn::grid_start(); i < n; i += stride) {                                               \
      gy[i] = rn::to_f32(y[i]) > 0.f ? dy[i] : rn::from_f32<T>(0.f);                                         \
    }                                                                                                        \
  }
RN_ACT_DTYPES(RELU_BACKWARD, relu_backward, )

#define RESIDUAL_BACKWARD(name, T, L, ...)                                   \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                     \
      name(const T* gy, T* dz, int N, int C, int H, int W, int Cz, int zs) { \
    shortcut_grad<T, L>(gy, dz, N, C, H, W, Cz, zs);                         \
  }
RN_ACT_FORMATS(RESIDUAL_BACKWARD, residual_backward, )

#define BN_BACKWARD_REDUCE_PARTIAL(name, T, L, ...)                                                         \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                    \
      name(const T* x, const T* dy, const float* mean, int N, int C, int HW, int chunks, double* partial) { \
    grad_chunk<T, L, false>(x, nullptr, dy, mean, tile_channel<T, L>(), N, C, HW, chunks, partial);         \
  }
RN_ACT_FORMATS(BN_BACKWARD_REDUCE_PARTIAL, bn_backward_reduce_partial, )

// bn_backward_finalize reads only per-channel operands: one kernel for every format.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_backward_finalize(const double* partial, int C, int chunks, long long count, const float* gamma,
                         const float* invstd, float* dgamma, float* dbeta, float* coef) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  double s1, s2;
  sum_partials(partial, c, chunks, s1, s2);
  finalize_grad(c, s1, s2, (double)count, 1.0, gamma, invstd, dgamma, dbeta, coef);
}

// bn_backward_input is dx alone from an already masked gradient gy.
#define BN_BACKWARD_INPUT(name, T, L, ...)                                                                     \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                       \
      name(const T* x, const T* gy, const float* mean, const float* coef, T* dx, int N, int C, int H, int W) { \
    input_grad<T, L, false, false>(x, nullptr, gy, mean, coef, dx, nullptr, N, C, H, W, C, 1);                 \
  }
RN_ACT_FORMATS(BN_BACKWARD_INPUT, bn_backward_input, )

// ---------------------------------------------------------------------------------------------------------
// Synchronised batch norm: the exchanged tensors are laid out as backend.BatchNormSyncer says, (world, 3, C)
// slots of (count, mean, M2) for the forward, and (2*C + world) for the backward: the sums of gy and of
// gy*(x - mean), then each rank's count. Grids as the fused reductions above.

// bn_sync_stats writes this rank's count, mean and M2 (the sum of squared deviations from the mean) of
// every channel into slot, as float.
#define BN_SYNC_STATS(name, T, L, ...)                                                                     \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                   \
      name(const T* x, int N, int C, int HW, int chunks, double* partial, unsigned int* counters,          \
           float* slot) {                                                                                  \
    int c;                                                                                                 \
    double K, s1, s2;                                                                                      \
    if (!tile_stats<T, L>(x, N, C, HW, chunks, partial, counters, c, K, s1, s2)) return;                   \
    const double M = (double)N * HW, dmean = s1 / M;                                                       \
    double m2 = s2 - s1 * dmean;                                                                           \
    if (m2 < 0) m2 = 0;                                                                                    \
    slot[c] = (float)M;                                                                                    \
    slot[C + c] = (float)(K + dmean);                                                                      \
    slot[2 * C + c] = (float)m2;                                                                           \
  }
RN_ACT_FORMATS(BN_SYNC_STATS, bn_sync_stats, )

// bn_sync_finalize merges the ranks' slots of channel c in rank order (Chan et al.'s pairwise update, in
// double, as the CPU reference does) and writes the statistics of the global batch.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_sync_finalize(const float* slots, int C, int world, float eps, float momentum, const float* gamma,
                     float* save_mean, float* save_invstd, float* run_mean, float* run_var, float* scale) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  double n = slots[c], mean = slots[C + c], m2 = slots[2 * C + c];
  for (int r = 1; r < world; r++) {
    const float* s = slots + 3LL * C * r;
    const double nb = s[c], mb = s[C + c], m2b = s[2 * C + c];
    const double total = n + nb, delta = mb - mean;
    mean = mean + delta * nb / total;
    m2 = m2 + (m2b + delta * delta * n * nb / total);
    n = total;
  }
  write_stats(c, mean, m2 / n, n, eps, momentum, gamma, save_mean, save_invstd, run_mean, run_var, scale);
}

// bn_sync_grad_reduce writes this rank's sums of gy and gy*(x - mean) of every channel into sums[c] and
// sums[C + c], and its count per channel into sums[2*C + rank], gy being dy masked by y > 0 when relu.
template <typename T, rn::Layout L, bool RELU>
__device__ __forceinline__ void sync_grad_reduce(const T* x, const T* y, const T* dy, const float* mean, int N,
                                                 int C, int HW, int chunks, double* partial,
                                                 unsigned int* counters, int rank, float* sums) {
  int c;
  double s1, s2;
  if (!tile_grad_sums<T, L, RELU>(x, y, dy, mean, N, C, HW, chunks, partial, counters, c, s1, s2)) return;
  sums[c] = (float)s1;
  sums[C + c] = (float)s2;
  if (c == 0) sums[2 * C + rank] = (float)((double)N * HW);
}

#define BN_SYNC_GRAD_REDUCE(name, T, L, ...)                                                              \
  extern "C" __global__ void __launch_bounds__(RN_BLOCK)                                                  \
      name(const T* x, const T* y, const T* dy, const float* mean, int relu, int N, int C, int HW,        \
           int chunks, double* partial, unsigned int* counters, int rank, float* sums) {                  \
    if (relu) {                                                                                           \
      sync_grad_reduce<T, L, true>(x, y, dy, mean, N, C, HW, chunks, partial, counters, rank, sums);      \
    } else {                                                                                              \
      sync_grad_reduce<T, L, false>(x, y, dy, mean, N, C, HW, chunks, partial, counters, rank, sums);     \
    }                                                                                                     \
  }
RN_ACT_FORMATS(BN_SYNC_GRAD_REDUCE, bn_sync_grad_reduce, )

// bn_sync_grad_finalize writes dgamma and dbeta, the global gradient divided by the world size, and the
// dx coefficients from the summed sums and counts.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    bn_sync_grad_finalize(const float* sums, int C, int world, const float* gamma, const float* invstd,
                          float* dgamma, float* dbeta, float* coef) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  double M = 0;
  for (int r = 0; r < world; r++) M += sums[2 * C + r];
  finalize_grad(c, sums[c], sums[C + c], M, (double)world, gamma, invstd, dgamma, dbeta, coef);
}
