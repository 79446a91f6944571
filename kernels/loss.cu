// Softmax cross-entropy of logits (N, K) against int32 labels (N): the per-sample loss and, when dlogits is
// not null, dlogits = (softmax - onehot) * scale. Numerically stable (shifted by the row maximum), exp and
// log in double as in the CPU reference. A label outside [0, K) gives a NaN loss and a NaN gradient row
// (the Go side rejects such labels before they get here).
//
// Kernels: softmax_cross_entropy.

#include <math.h>

#include "common.cuh"

// softmax_cross_entropy: one warp per row, RN_WARPS rows per block.
extern "C" __global__ void __launch_bounds__(RN_BLOCK)
    softmax_cross_entropy(const float* logits, const int* labels, float* loss, float* dlogits, int N, int K,
                          float scale) {
  const int row = blockIdx.x * RN_WARPS + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= N) return;  // the whole warp leaves together
  const float* l = logits + (long long)row * K;
  float* dl = dlogits ? dlogits + (long long)row * K : nullptr;

  float m = -INFINITY;
  for (int j = lane; j < K; j += 32) m = fmaxf(m, l[j]);
  m = rn::warp_max(m);

  double sum = 0;
  for (int j = lane; j < K; j += 32) sum += exp((double)(l[j] - m));
  sum = rn::warp_allsum(sum);

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
