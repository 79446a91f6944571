// Softmax cross-entropy of logits (N, K) against int32 labels (N): the per-sample loss and, when dlogits is
// not null, dlogits = (softmax - onehot) * scale. Numerically stable (shifted by the row maximum), exp and
// log in double as in the CPU reference. A label outside [0, K) gives a NaN loss and a NaN gradient row
// (the Go side rejects such labels before they get here).
//
// soft_target_cross_entropy is the same against soft targets (N, K) (label smoothing, mixup, CutMix): loss
// -sum_c t_c log softmax_c and dlogits = ((sum_c t_c) softmax - t) * scale, the sums in double.
//
// Kernels: softmax_cross_entropy, soft_target_cross_entropy.

#include <math.h>

#include "common.cuh"

namespace {

// row_softmax_sum finds the maximum m of a row of K logits and the sum of exp(l - m) in double, both
// reduced over the warp (every lane gets them).
__device__ __forceinline__ void row_softmax_sum(const float* l, int K, int lane, float& m, double& sum) {
  m = -INFINITY;
  for (int j = lane; j < K; j += 32) m = fmaxf(m, l[j]);
  m = rn::warp_max(m);
  sum = 0;
  for (int j = lane; j < K; j += 32) sum += exp((double)(l[j] - m));
  sum = rn::warp_allsum(sum);
}

}  // namespace

// softmax_cross_entropy: one warp per row, RN_WARPS rows per block.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    softmax_cross_entropy(const float* logits, const int* labels, float* loss, float* dlogits, int N, int K,
                          float scale) {
  const int row = blockIdx.x * RN_WARPS + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;  // the whole warp leaves together
  const float* l = logits + (long long)row * K;
  float* dl = dlogits ? dlogits + (long long)row * K : nullptr;

  float m;
  double sum;
  row_softmax_sum(l, K, lane, m, sum);

  const int label = labels[row];
  if (label < 0 || label >= K) {
    if (lane == 0) loss[row] = NAN;
    if (dl) {
      for (int j = lane; j < K; j += 32) dl[j] = NAN;
    }
    return;
  }
  if (lane == 0) loss[row] = (float)(log(sum) - (double)(l[label] - m));
  if (dl) {
    for (int j = lane; j < K; j += 32) {
      double p = exp((double)(l[j] - m)) / sum;
      if (j == label) p -= 1;
      dl[j] = (float)p * scale;
    }
  }
}

// soft_target_cross_entropy: one warp per row, RN_WARPS rows per block.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    soft_target_cross_entropy(const float* logits, const float* targets, float* loss, float* dlogits, int N, int K,
                              float scale) {
  const int row = blockIdx.x * RN_WARPS + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;  // the whole warp leaves together
  const float* l = logits + (long long)row * K;
  const float* t = targets + (long long)row * K;
  float* dl = dlogits ? dlogits + (long long)row * K : nullptr;

  float m;
  double sum;
  row_softmax_sum(l, K, lane, m, sum);
  const double lse = log(sum);

  double ls = 0, mass = 0;
  for (int j = lane; j < K; j += 32) {
    const double tj = t[j];
    if (tj != 0) ls += tj * (lse - (double)(l[j] - m));
    mass += tj;
  }
  ls = rn::warp_allsum(ls);
  mass = rn::warp_allsum(mass);
  if (lane == 0) loss[row] = (float)ls;
  if (dl) {
    for (int j = lane; j < K; j += 32) dl[j] = (float)(mass * exp((double)(l[j] - m)) / sum - (double)t[j]) * scale;
  }
}
