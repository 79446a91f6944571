//go:build kernelemu

// A CPU emulator of the CUDA execution model, for testing kernels/*.cu without a GPU: the kernel sources
// are compiled here with the shims of emulator.h; a launch runs the grid's blocks one after another, each as
// 256 fibers that synchronise like the threads of a real block (barriers for __syncthreads, an exchange
// through memory for warp shuffles). It checks indexing, reductions and launch arguments, not speed or memory ordering
// between blocks beyond what the kernels request. Naive GEMM and convolution stand in for cuBLAS and
// cuDNN.

#include "emulator.h"

#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

dim3 threadIdx;
dim3 blockIdx;
dim3 blockDim;
dim3 gridDim;
uint64_t emu_warp_slot[8][32];

#include "../../kernels/all.cu"

namespace {

constexpr int kThreads = 256;

// The threads of a block are fibers, run by a scheduler on the launching OS thread: a fiber runs until
// it finishes or waits at a barrier; when none can run, the scheduler releases a warp whose live fibers
// all wait at a warp barrier, else the block if all its live fibers wait at __syncthreads.
enum FiberState { kReady, kWaitBlock, kWaitWarp, kDone };

constexpr size_t kStack = 256 << 10;
char* stacks;
int current;
const std::function<void()>* body;

#if defined(__x86_64__)
// A context switch without ucontext's signal-mask system calls: save the callee-saved registers and the
// SSE/x87 control words on the current stack, store its pointer in *from, and continue on stack to.
extern "C" void emu_swap(void** from, void* to);
asm(R"(
.text
.globl emu_swap
.type emu_swap, @function
emu_swap:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size emu_swap, .-emu_swap
.section .note.GNU-stack,"",@progbits
.text
)");

struct Fiber {
  void* sp;
  FiberState state;
};
Fiber fibers[kThreads];
void* scheduler_sp;

[[noreturn]] void fiber_entry() {
  (*body)();
  fibers[current].state = kDone;
  void* dead;
  emu_swap(&dead, scheduler_sp);
  std::abort();
}

void fiber_init(int i) {
  // The new stack looks like emu_swap's frame: control words, six registers, and a return address that
  // enters fiber_entry with the alignment of a called function.
  uintptr_t top = reinterpret_cast<uintptr_t>(stacks + (size_t)(i + 1) * kStack) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;  // fiber_entry's would-be return address (keeps rsp+8 16-byte aligned at entry)
  *--sp = reinterpret_cast<void*>(&fiber_entry);
  for (int r = 0; r < 6; r++) *--sp = nullptr;
  uint32_t mxcsr;
  uint16_t fpcw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpcw));
  *--sp = nullptr;
  std::memcpy(sp, &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(sp) + 4, &fpcw, 2);
  fibers[i].sp = sp;
  fibers[i].state = kReady;
}

void resume(int i) { emu_swap(&scheduler_sp, fibers[i].sp); }

void wait_as(FiberState s) {
  fibers[current].state = s;
  emu_swap(&fibers[current].sp, scheduler_sp);
}
#else
struct Fiber {
  ucontext_t ctx;
  FiberState state;
};
Fiber fibers[kThreads];
ucontext_t scheduler;

void fiber_main() {
  (*body)();
  fibers[current].state = kDone;  // returning resumes the scheduler (uc_link)
}

void fiber_init(int i) {
  Fiber& f = fibers[i];
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = stacks + (size_t)i * kStack;
  f.ctx.uc_stack.ss_size = kStack;
  f.ctx.uc_link = &scheduler;
  makecontext(&f.ctx, fiber_main, 0);
  f.state = kReady;
}

void resume(int i) { swapcontext(&scheduler, &fibers[i].ctx); }

void wait_as(FiberState s) {
  fibers[current].state = s;
  swapcontext(&fibers[current].ctx, &scheduler);
}
#endif

void run_block(const std::function<void()>& fn) {
  if (!stacks) stacks = static_cast<char*>(std::malloc(kStack * kThreads));
  body = &fn;
  for (int i = 0; i < kThreads; i++) fiber_init(i);
  for (;;) {
    bool ran = false;
    for (int i = 0; i < kThreads; i++) {
      if (fibers[i].state != kReady) continue;
      current = i;
      threadIdx = dim3{(unsigned)i, 0, 0};
      resume(i);
      ran = true;
    }
    if (ran) continue;
    bool released = false;
    for (int w = 0; w < kThreads / 32; w++) {
      bool all = true, any = false;
      for (int l = 0; l < 32; l++) {
        const FiberState s = fibers[w * 32 + l].state;
        if (s == kDone) continue;
        any = true;
        all = all && s == kWaitWarp;
      }
      if (any && all) {
        for (int l = 0; l < 32; l++) {
          if (fibers[w * 32 + l].state == kWaitWarp) fibers[w * 32 + l].state = kReady;
        }
        released = true;
      }
    }
    if (released) continue;
    int live = 0, atBlock = 0;
    for (auto& f : fibers) {
      live += f.state != kDone;
      atBlock += f.state == kWaitBlock;
    }
    if (live == 0) return;
    if (atBlock == live) {
      for (auto& f : fibers) {
        if (f.state == kWaitBlock) f.state = kReady;
      }
      continue;
    }
    std::fprintf(stderr, "kernelemu: deadlock in block (%u, %u): threads wait at different barriers\n", blockIdx.x,
                 blockIdx.y);
    std::abort();
  }
}

void run_grid(unsigned gx, unsigned gy, const std::function<void()>& fn) {
  blockDim = dim3{kThreads, 1, 1};
  gridDim = dim3{gx, gy, 1};
  for (unsigned y = 0; y < gy; y++) {
    for (unsigned x = 0; x < gx; x++) {
      blockIdx = dim3{x, y, 0};
      run_block(fn);
    }
  }
}

std::mutex launch_mu;

// Kernel arguments arrive as cuLaunchKernel gets them from the Go side: each in its own 8-byte slot,
// read with the parameter's own size.
template <typename T>
T arg_from(const uint64_t* a, size_t i) {
  T v;
  std::memcpy(&v, &a[i], sizeof(T));
  return v;
}

struct Entry {
  int nargs;
  std::function<void(const uint64_t*)> call;
};

template <typename... A, size_t... I>
void call_with(void (*k)(A...), const uint64_t* a, std::index_sequence<I...>) {
  k(arg_from<A>(a, I)...);
}

template <typename... A>
Entry entry(void (*k)(A...)) {
  return Entry{(int)sizeof...(A), [k](const uint64_t* a) { call_with(k, a, std::index_sequence_for<A...>{}); }};
}

#define E(name) {#name, entry(&name)}
// EF is E for a kernel that RN_ACT_FORMATS or RN_ACT_DTYPES instantiates (kernels/common.cuh).
#define EF(name, T, L, ...) E(name),

const std::map<std::string, Entry>& table() {
  static const std::map<std::string, Entry> t = {
      RN_ACT_FORMATS(EF, bn_forward_stats)
      RN_ACT_FORMATS(EF, bn_forward_apply)
      RN_ACT_FORMATS(EF, bn_forward_apply_relu)
      RN_ACT_FORMATS(EF, bn_forward_apply_add)
      RN_ACT_FORMATS(EF, bn_forward_apply_add_relu)
      RN_ACT_FORMATS(EF, bn_stats_partial)
      RN_ACT_FORMATS(EF, bn_stats_finalize)
      RN_ACT_FORMATS(EF, bn_normalize)
      RN_ACT_FORMATS(EF, residual_add)
      RN_ACT_DTYPES(EF, relu_forward)
      RN_ACT_FORMATS(EF, bn_inference_apply)
      RN_ACT_FORMATS(EF, bn_inference_apply_relu)
      RN_ACT_FORMATS(EF, bn_inference_apply_add)
      RN_ACT_FORMATS(EF, bn_inference_apply_add_relu)
      E(bn_inference_params),
      RN_ACT_FORMATS(EF, bn_backward_reduce)
      RN_ACT_FORMATS(EF, bn_backward_reduce_relu)
      RN_ACT_FORMATS(EF, bn_backward_dx)
      RN_ACT_FORMATS(EF, bn_backward_dx_relu)
      RN_ACT_FORMATS(EF, bn_backward_dx_add)
      RN_ACT_FORMATS(EF, bn_backward_dx_add_relu)
      RN_ACT_DTYPES(EF, relu_backward)
      RN_ACT_FORMATS(EF, residual_backward)
      RN_ACT_FORMATS(EF, bn_backward_reduce_partial)
      E(bn_backward_finalize),
      RN_ACT_FORMATS(EF, bn_backward_input)
      RN_ACT_FORMATS(EF, bn_sync_stats)
      E(bn_sync_finalize),
      RN_ACT_FORMATS(EF, bn_sync_grad_reduce)
      E(bn_sync_grad_finalize),
      RN_ACT_FORMATS(EF, maxpool_forward)
      RN_ACT_FORMATS(EF, maxpool_backward)
      RN_ACT_FORMATS(EF, avgpool_forward)
      RN_ACT_FORMATS(EF, avgpool_backward)
      RN_ACT_FORMATS(EF, residual_add_out)
      RN_ACT_FORMATS(EF, residual_backward_accumulate)
      E(softmax_cross_entropy),
      E(soft_target_cross_entropy),
      E(linear_bias_add),
      E(linear_bias_grad),
      E(sgd_step),
      E(sgd_step_single),
      E(find_nonfinite),

      E(filter_to_f32_nhwc),
      E(filter_to_bf16_nchw),
      E(filter_to_bf16_nhwc),
      E(filter_to_f16_nchw),
      E(filter_to_f16_nhwc),
      E(filter_from_f32_nhwc),
      E(filter_from_bf16_nchw),
      E(filter_from_bf16_nhwc),
      E(filter_from_f16_nchw),
      E(filter_from_f16_nhwc),
      E(activation_to_f32_nhwc),
      E(activation_to_bf16_nchw),
      E(activation_to_bf16_nhwc),
      E(activation_to_f16_nchw),
      E(activation_to_f16_nhwc),
      E(activation_from_f32_nhwc),
      E(activation_from_bf16_nchw),
      E(activation_from_bf16_nhwc),
      E(activation_from_f16_nchw),
      E(activation_from_f16_nhwc),

      RN_ACT_FORMATS(EF, gate_forward)
      RN_ACT_FORMATS(EF, gate_backward)
      RN_ACT_FORMATS(EF, gate_backward_data)
      RN_ACT_FORMATS(EF, gate_scale)
      RN_ACT_FORMATS(EF, gate_grad_reduce)
      RN_ACT_FORMATS(EF, gate_pool_add)
      RN_ACT_FORMATS(EF, dropout_apply)
      RN_ACT_FORMATS(EF, avgpool_window_forward)
      RN_ACT_FORMATS(EF, avgpool_window_backward)
      RN_ACT_FORMATS(EF, copy_channels)
      RN_ACT_FORMATS(EF, scaled_residual_forward)
      RN_ACT_FORMATS(EF, scaled_residual_backward)
      RN_ACT_FORMATS(EF, scaled_bias)
      RN_ACT_FORMATS(EF, scaled_residual_bias_grad)
      E(excite_bias_relu),
      E(excite_relu_bias_grad),
  };
  return t;
}

inline float* F(uint64_t p) { return reinterpret_cast<float*>(p); }

}  // namespace

extern "C" {

// emu_launch runs kernel name on a (gx, gy) grid: 0 when done, -1 for an unknown kernel, -2 for a wrong
// argument count.
int emu_launch(const char* name, int gx, int gy, const uint64_t* args, int nargs) {
  auto it = table().find(name);
  if (it == table().end()) return -1;
  if (it->second.nargs != nargs) return -2;
  std::vector<uint64_t> a(args, args + nargs);
  std::lock_guard<std::mutex> lock(launch_mu);
  const auto& call = it->second.call;
  run_grid((unsigned)gx, (unsigned)gy, [&call, &a] { call(a.data()); });
  return 0;
}

int emu_kernel_count(void) { return (int)table().size(); }

}  // extern "C"

void emu_wait_block() { wait_as(kWaitBlock); }
void emu_wait_warp() { wait_as(kWaitWarp); }

extern "C" {

uint64_t emu_alloc(int64_t bytes) {
  void* p = std::aligned_alloc(256, (size_t)((bytes + 255) / 256 * 256));
  if (p) std::memset(p, 0xff, (size_t)bytes);  // garbage, as fresh device memory would be
  return (uint64_t)p;
}

void emu_free(uint64_t p) { std::free((void*)p); }

void emu_memset0(uint64_t dst, int64_t n) { std::memset(reinterpret_cast<void*>(dst), 0, (size_t)n); }

void emu_memcpy(uint64_t dst, uint64_t src, int64_t n) {
  std::memmove((void*)dst, (const void*)src, (size_t)n);
}

// emu_sgemm is column-major C (m, n) = op(A) op(B) + beta*C, summed in double.
void emu_sgemm(int ta, int tb, int m, int n, int k, uint64_t a, int lda, uint64_t b, int ldb, float beta, uint64_t c,
               int ldc) {
  const float *A = F(a), *B = F(b);
  float* C = F(c);
  for (int j = 0; j < n; j++) {
    for (int i = 0; i < m; i++) {
      double s = 0;
      for (int p = 0; p < k; p++) {
        const float av = ta ? A[p + (int64_t)i * lda] : A[i + (int64_t)p * lda];
        const float bv = tb ? B[j + (int64_t)p * ldb] : B[p + (int64_t)j * ldb];
        s += (double)av * bv;
      }
      float& out = C[i + (int64_t)j * ldc];
      out = (float)(s + (beta != 0 ? (double)beta * out : 0.0));
    }
  }
}

// Tensor is one operand of emu_conv: its data type (backend.DType: 0 f32, 2 bf16, 3 f16) and whether it
// is channels-last, NHWC for an activation and KRSC (Cout, KH, KW, Cin) for a filter, as cuDNN's
// descriptors say it. Dimensions are always named in (N, C, H, W) order.
struct Tensor {
  uint64_t p;
  int dtype;
  bool nhwc;
  int C, H, W;

  int64_t index(int n, int c, int h, int w) const {
    return nhwc ? (((int64_t)n * H + h) * W + w) * C + c : (((int64_t)n * C + c) * H + h) * W + w;
  }
  float get(int64_t i) const {
    switch (dtype) {
      case 2:
        return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(p)[i]);
      case 3:
        return __half2float(reinterpret_cast<const __half*>(p)[i]);
    }
    return F(p)[i];
  }
  // put stores v rounded to the tensor's type: once to float, as an f32 accumulator holds it, then to
  // the 16-bit type, as cuDNN's epilogue converts it.
  void put(int64_t i, double v) const {
    const float f = (float)v;
    switch (dtype) {
      case 2:
        reinterpret_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(f);
        return;
      case 3:
        reinterpret_cast<__half*>(p)[i] = __float2half_rn(f);
        return;
    }
    F(p)[i] = f;
  }
  float at(int n, int c, int h, int w) const { return get(index(n, c, h, w)); }
};

// emu_conv runs one direction of a cross-correlation (as cuDNN would): dir 0 y = conv(x, w) + beta*y;
// dir 1 x (dx) = conv^T(y (dy), w) + beta*dx; dir 2 w (dw) = corr(x, y (dy)) + beta*dw. x, w and y hold
// dtype (backend.DType), padded by pad_h rows and pad_w columns, channels-last when nhwc is set (the filter then KRSC). In groups, output channel o
// sees the Cin/groups input channels of its group, and w is (Cout, Cin/groups, KH, KW).
//
// Every operand is widened to float exactly and the products are summed in double, then rounded once to
// float and once to the output's type. cuDNN sums in f32 (the convolution descriptor's compute type) in an
// order of its own; the double sum is the exact sum to well within that f32 accumulation error, so the
// emulator's results sit inside the error bound the tests derive for cuDNN, and for f32 NCHW they are
// the same as before 16-bit types existed.
void emu_conv(int dir, int dtype, int nhwc, int N, int Cin, int H, int W, int Cout, int KH, int KW, int stride,
              int pad_h, int pad_w, int OH, int OW, int groups, uint64_t xp, uint64_t wp, uint64_t yp, float beta) {
  const int Cg = Cin / groups, Og = Cout / groups;  // channels of one group: in, out
  const Tensor x{xp, dtype, nhwc != 0, Cin, H, W}, w{wp, dtype, nhwc != 0, Cg, KH, KW},
      y{yp, dtype, nhwc != 0, Cout, OH, OW};
  auto plus_prior = [&](const Tensor& t, int64_t i, double s) {
    return s + (beta != 0 ? (double)beta * t.get(i) : 0.0);
  };
  if (dir == 0) {
    for (int n = 0; n < N; n++)
      for (int o = 0; o < Cout; o++)
        for (int oy = 0; oy < OH; oy++)
          for (int ox = 0; ox < OW; ox++) {
            double s = 0;
            for (int c = 0; c < Cg; c++)
              for (int i = 0; i < KH; i++)
                for (int j = 0; j < KW; j++) {
                  const int iy = oy * stride - pad_h + i, ix = ox * stride - pad_w + j;
                  if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                    s += (double)x.at(n, o / Og * Cg + c, iy, ix) * w.at(o, c, i, j);
                }
            const int64_t at = y.index(n, o, oy, ox);
            y.put(at, plus_prior(y, at, s));
          }
    return;
  }
  if (dir == 1) {
    std::vector<double> acc((size_t)N * Cin * H * W, 0.0);  // (N, Cin, H, W) order
    for (int n = 0; n < N; n++)
      for (int o = 0; o < Cout; o++)
        for (int oy = 0; oy < OH; oy++)
          for (int ox = 0; ox < OW; ox++) {
            const double g = y.at(n, o, oy, ox);
            for (int c = 0; c < Cg; c++)
              for (int i = 0; i < KH; i++)
                for (int j = 0; j < KW; j++) {
                  const int iy = oy * stride - pad_h + i, ix = ox * stride - pad_w + j;
                  if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                    acc[(((size_t)n * Cin + o / Og * Cg + c) * H + iy) * W + ix] += g * w.at(o, c, i, j);
                }
          }
    for (int n = 0; n < N; n++)
      for (int c = 0; c < Cin; c++)
        for (int h = 0; h < H; h++)
          for (int ww = 0; ww < W; ww++) {
            const int64_t at = x.index(n, c, h, ww);
            x.put(at, plus_prior(x, at, acc[(((size_t)n * Cin + c) * H + h) * W + ww]));
          }
    return;
  }
  std::vector<double> acc((size_t)Cout * Cg * KH * KW, 0.0);  // (Cout, Cin/groups, KH, KW) order
  for (int n = 0; n < N; n++)
    for (int o = 0; o < Cout; o++)
      for (int oy = 0; oy < OH; oy++)
        for (int ox = 0; ox < OW; ox++) {
          const double g = y.at(n, o, oy, ox);
          for (int c = 0; c < Cg; c++)
            for (int i = 0; i < KH; i++)
              for (int j = 0; j < KW; j++) {
                const int iy = oy * stride - pad_h + i, ix = ox * stride - pad_w + j;
                if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                  acc[(((size_t)o * Cg + c) * KH + i) * KW + j] += g * x.at(n, o / Og * Cg + c, iy, ix);
              }
        }
  for (int o = 0; o < Cout; o++)
    for (int c = 0; c < Cg; c++)
      for (int i = 0; i < KH; i++)
        for (int j = 0; j < KW; j++) {
          const int64_t at = w.index(o, c, i, j);
          w.put(at, plus_prior(w, at, acc[(((size_t)o * Cg + c) * KH + i) * KW + j]));
        }
}

}  // extern "C"
