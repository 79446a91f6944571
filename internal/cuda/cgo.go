//go:build cuda

package cuda

// All of the package's C: the CUDA driver, cuDNN and cuBLAS are opened with dlopen when a device is
// opened (never at process start, so a binary built with -tags cuda runs --device cpu on a machine with no
// driver), their entry points are looked up with dlsym into function pointers typed from the official
// headers (__typeof__ of the header's prototype, so a pointer cannot disagree with the library), and small
// C wrappers call through them. The headers are only needed to compile: nothing links against CUDA.
//
// Everything here that touches the context runs on the device's owner goroutine, which is locked to its
// OS thread (see device.go). C handles live only in the unexported driver and convPlan types below.

/*
#cgo CFLAGS: -Wno-deprecated-declarations
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cuda.h>
#include <cudnn.h>
#include <cublas_v2.h>

#define RN_FN(name) static __typeof__(name)* p_##name
#define RN_SYM(h, name, sym)                                   \
  do {                                                         \
    *(void**)(&p_##name) = dlsym(h, sym);                      \
    if (!p_##name) {                                           \
      snprintf(rn_msg, sizeof rn_msg, "%s", sym);              \
      return 2;                                                \
    }                                                          \
  } while (0)

static char rn_msg[1024];
static const char* rn_message(void) { return rn_msg; }

static int rn_open(void** h, const char* lib) {
  *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!*h) {
    const char* e = dlerror();
    snprintf(rn_msg, sizeof rn_msg, "%s", e ? e : "dlopen failed");
    return 1;
  }
  return 0;
}

// ---- CUDA driver ----------------------------------------------------------------------------------------
RN_FN(cuInit);
RN_FN(cuDriverGetVersion);
RN_FN(cuGetErrorName);
RN_FN(cuDeviceGetCount);
RN_FN(cuDeviceGet);
RN_FN(cuDeviceGetName);
RN_FN(cuDeviceGetAttribute);
RN_FN(cuDeviceTotalMem);
RN_FN(cuDevicePrimaryCtxRetain);
RN_FN(cuDevicePrimaryCtxRelease);
RN_FN(cuCtxSetCurrent);
RN_FN(cuCtxSynchronize);
RN_FN(cuStreamCreate);
RN_FN(cuStreamDestroy);
RN_FN(cuStreamSynchronize);
RN_FN(cuStreamWaitEvent);
RN_FN(cuEventCreate);
RN_FN(cuEventDestroy);
RN_FN(cuEventRecord);
RN_FN(cuEventSynchronize);
RN_FN(cuMemAlloc);
RN_FN(cuMemFree);
RN_FN(cuMemGetInfo);
RN_FN(cuMemHostAlloc);
RN_FN(cuMemFreeHost);
RN_FN(cuMemcpyHtoDAsync);
RN_FN(cuMemcpyDtoHAsync);
RN_FN(cuMemcpyDtoDAsync);
RN_FN(cuMemsetD8Async);
RN_FN(cuModuleLoadData);
RN_FN(cuModuleUnload);
RN_FN(cuModuleGetFunction);
RN_FN(cuLaunchKernel);
RN_FN(cuStreamBeginCapture);
RN_FN(cuStreamEndCapture);
RN_FN(cuGraphInstantiate);
RN_FN(cuGraphLaunch);
RN_FN(cuGraphExecDestroy);
RN_FN(cuGraphDestroy);

static void* rn_libcuda;

static int rn_load_driver(void) {
  if (rn_open(&rn_libcuda, "libcuda.so.1")) return 1;
  void* h = rn_libcuda;
  RN_SYM(h, cuInit, "cuInit");
  RN_SYM(h, cuDriverGetVersion, "cuDriverGetVersion");
  RN_SYM(h, cuGetErrorName, "cuGetErrorName");
  RN_SYM(h, cuDeviceGetCount, "cuDeviceGetCount");
  RN_SYM(h, cuDeviceGet, "cuDeviceGet");
  RN_SYM(h, cuDeviceGetName, "cuDeviceGetName");
  RN_SYM(h, cuDeviceGetAttribute, "cuDeviceGetAttribute");
  RN_SYM(h, cuDeviceTotalMem, "cuDeviceTotalMem_v2");
  RN_SYM(h, cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  RN_SYM(h, cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
  RN_SYM(h, cuCtxSetCurrent, "cuCtxSetCurrent");
  RN_SYM(h, cuCtxSynchronize, "cuCtxSynchronize");
  RN_SYM(h, cuStreamCreate, "cuStreamCreate");
  RN_SYM(h, cuStreamDestroy, "cuStreamDestroy_v2");
  RN_SYM(h, cuStreamSynchronize, "cuStreamSynchronize");
  RN_SYM(h, cuStreamWaitEvent, "cuStreamWaitEvent");
  RN_SYM(h, cuEventCreate, "cuEventCreate");
  RN_SYM(h, cuEventDestroy, "cuEventDestroy_v2");
  RN_SYM(h, cuEventRecord, "cuEventRecord");
  RN_SYM(h, cuEventSynchronize, "cuEventSynchronize");
  RN_SYM(h, cuMemAlloc, "cuMemAlloc_v2");
  RN_SYM(h, cuMemFree, "cuMemFree_v2");
  RN_SYM(h, cuMemGetInfo, "cuMemGetInfo_v2");
  RN_SYM(h, cuMemHostAlloc, "cuMemHostAlloc");
  RN_SYM(h, cuMemFreeHost, "cuMemFreeHost");
  RN_SYM(h, cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
  RN_SYM(h, cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
  RN_SYM(h, cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2");
  RN_SYM(h, cuMemsetD8Async, "cuMemsetD8Async");
  RN_SYM(h, cuModuleLoadData, "cuModuleLoadData");
  RN_SYM(h, cuModuleUnload, "cuModuleUnload");
  RN_SYM(h, cuModuleGetFunction, "cuModuleGetFunction");
  RN_SYM(h, cuLaunchKernel, "cuLaunchKernel");
  // cuda.h maps cuStreamBeginCapture to its _v2 and cuGraphInstantiate to cuGraphInstantiateWithFlags.
  RN_SYM(h, cuStreamBeginCapture, "cuStreamBeginCapture_v2");
  RN_SYM(h, cuStreamEndCapture, "cuStreamEndCapture");
  RN_SYM(h, cuGraphInstantiate, "cuGraphInstantiateWithFlags");
  RN_SYM(h, cuGraphLaunch, "cuGraphLaunch");
  RN_SYM(h, cuGraphExecDestroy, "cuGraphExecDestroy");
  RN_SYM(h, cuGraphDestroy, "cuGraphDestroy");
  return 0;
}

static const char* rn_cu_error_name(CUresult r) {
  const char* s = NULL;
  if (p_cuGetErrorName == NULL || p_cuGetErrorName(r, &s) != CUDA_SUCCESS) return NULL;
  return s;
}

static CUresult rn_cuInit(void) { return p_cuInit(0); }
static CUresult rn_cuDriverGetVersion(int* v) { return p_cuDriverGetVersion(v); }
static CUresult rn_cuDeviceGetCount(int* n) { return p_cuDeviceGetCount(n); }
static CUresult rn_cuDeviceGet(CUdevice* d, int ordinal) { return p_cuDeviceGet(d, ordinal); }
static CUresult rn_cuDeviceGetName(char* name, int len, CUdevice d) { return p_cuDeviceGetName(name, len, d); }
static CUresult rn_cuDeviceGetAttribute(int* v, int attr, CUdevice d) {
  return p_cuDeviceGetAttribute(v, (CUdevice_attribute)attr, d);
}
static CUresult rn_cuDeviceTotalMem(size_t* b, CUdevice d) { return p_cuDeviceTotalMem(b, d); }
static CUresult rn_cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice d) { return p_cuDevicePrimaryCtxRetain(c, d); }
static CUresult rn_cuDevicePrimaryCtxRelease(CUdevice d) { return p_cuDevicePrimaryCtxRelease(d); }
static CUresult rn_cuCtxSetCurrent(CUcontext c) { return p_cuCtxSetCurrent(c); }
static CUresult rn_cuCtxSynchronize(void) { return p_cuCtxSynchronize(); }
static CUresult rn_cuStreamCreate(CUstream* s) { return p_cuStreamCreate(s, CU_STREAM_NON_BLOCKING); }
static CUresult rn_cuStreamDestroy(CUstream s) { return p_cuStreamDestroy(s); }
static CUresult rn_cuStreamSynchronize(CUstream s) { return p_cuStreamSynchronize(s); }
static CUresult rn_cuStreamWaitEvent(CUstream s, CUevent e) { return p_cuStreamWaitEvent(s, e, 0); }
static CUresult rn_cuEventCreate(CUevent* e) { return p_cuEventCreate(e, CU_EVENT_DISABLE_TIMING); }
static CUresult rn_cuEventDestroy(CUevent e) { return p_cuEventDestroy(e); }
static CUresult rn_cuEventRecord(CUevent e, CUstream s) { return p_cuEventRecord(e, s); }
static CUresult rn_cuEventSynchronize(CUevent e) { return p_cuEventSynchronize(e); }
static CUresult rn_cuMemAlloc(CUdeviceptr* p, size_t n) { return p_cuMemAlloc(p, n); }
static CUresult rn_cuMemFree(CUdeviceptr p) { return p_cuMemFree(p); }
static CUresult rn_cuMemGetInfo(size_t* free, size_t* total) { return p_cuMemGetInfo(free, total); }
static CUresult rn_cuMemHostAlloc(void** p, size_t n) { return p_cuMemHostAlloc(p, n, 0); }
static CUresult rn_cuMemFreeHost(void* p) { return p_cuMemFreeHost(p); }
static CUresult rn_cuMemcpyHtoDAsync(CUdeviceptr dst, const void* src, size_t n, CUstream s) {
  return p_cuMemcpyHtoDAsync(dst, src, n, s);
}
static CUresult rn_cuMemcpyDtoHAsync(void* dst, CUdeviceptr src, size_t n, CUstream s) {
  return p_cuMemcpyDtoHAsync(dst, src, n, s);
}
static CUresult rn_cuMemcpyDtoDAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) {
  return p_cuMemcpyDtoDAsync(dst, src, n, s);
}
static CUresult rn_cuMemsetD8Async(CUdeviceptr dst, unsigned char v, size_t n, CUstream s) {
  return p_cuMemsetD8Async(dst, v, n, s);
}
static CUresult rn_cuModuleLoadData(CUmodule* m, const void* image) { return p_cuModuleLoadData(m, image); }
static CUresult rn_cuModuleUnload(CUmodule m) { return p_cuModuleUnload(m); }
static CUresult rn_cuModuleGetFunction(CUfunction* f, CUmodule m, const char* name) {
  return p_cuModuleGetFunction(f, m, name);
}

// Graphs: capture is thread-local, as only the owner thread issues work, and must not be disturbed by
// another device's thread allocating; the instantiated graph is launched with no flags (it has no
// allocation nodes, as the device allocates nothing while recording).
static CUresult rn_cuStreamBeginCapture(CUstream s) {
  return p_cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
}
static CUresult rn_cuStreamEndCapture(CUstream s, CUgraph* g) { return p_cuStreamEndCapture(s, g); }
static CUresult rn_cuGraphInstantiate(CUgraphExec* e, CUgraph g) { return p_cuGraphInstantiate(e, g, 0); }
static CUresult rn_cuGraphLaunch(CUgraphExec e, CUstream s) { return p_cuGraphLaunch(e, s); }
static CUresult rn_cuGraphExecDestroy(CUgraphExec e) { return p_cuGraphExecDestroy(e); }
static CUresult rn_cuGraphDestroy(CUgraph g) { return p_cuGraphDestroy(g); }

#define RN_MAX_ARGS 16

// rn_launch launches f with 1-D blocks of bx threads. args holds n parameters, each in its own 8-byte
// slot, little-endian, so a 4-byte parameter is read from the low half of its slot.
static CUresult rn_launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, CUstream s,
                          const uint64_t* args, int n) {
  uint64_t local[RN_MAX_ARGS];
  void* params[RN_MAX_ARGS];
  if (n > RN_MAX_ARGS) return CUDA_ERROR_INVALID_VALUE;
  for (int i = 0; i < n; i++) {
    local[i] = args[i];
    params[i] = &local[i];
  }
  return p_cuLaunchKernel(f, gx, gy, gz, bx, 1, 1, 0, s, params, NULL);
}

// ---- cuDNN ----------------------------------------------------------------------------------------------
RN_FN(cudnnGetVersion);
RN_FN(cudnnGetCudartVersion);
RN_FN(cudnnGetErrorString);
RN_FN(cudnnCreate);
RN_FN(cudnnDestroy);
RN_FN(cudnnSetStream);
RN_FN(cudnnCreateTensorDescriptor);
RN_FN(cudnnDestroyTensorDescriptor);
RN_FN(cudnnSetTensor4dDescriptor);
RN_FN(cudnnCreateFilterDescriptor);
RN_FN(cudnnDestroyFilterDescriptor);
RN_FN(cudnnSetFilter4dDescriptor);
RN_FN(cudnnCreateConvolutionDescriptor);
RN_FN(cudnnDestroyConvolutionDescriptor);
RN_FN(cudnnSetConvolution2dDescriptor);
RN_FN(cudnnSetConvolutionMathType);
RN_FN(cudnnSetConvolutionGroupCount);
RN_FN(cudnnGetConvolution2dForwardOutputDim);
RN_FN(cudnnFindConvolutionForwardAlgorithmEx);
RN_FN(cudnnGetConvolutionForwardAlgorithm_v7);
RN_FN(cudnnGetConvolutionForwardWorkspaceSize);
RN_FN(cudnnConvolutionForward);
RN_FN(cudnnFindConvolutionBackwardDataAlgorithmEx);
RN_FN(cudnnGetConvolutionBackwardDataAlgorithm_v7);
RN_FN(cudnnGetConvolutionBackwardDataWorkspaceSize);
RN_FN(cudnnConvolutionBackwardData);
RN_FN(cudnnFindConvolutionBackwardFilterAlgorithmEx);
RN_FN(cudnnGetConvolutionBackwardFilterAlgorithm_v7);
RN_FN(cudnnGetConvolutionBackwardFilterWorkspaceSize);
RN_FN(cudnnConvolutionBackwardFilter);

static void* rn_libcudnn;

static int rn_load_cudnn(void) {
  if (rn_open(&rn_libcudnn, "libcudnn.so.9")) return 1;
  void* h = rn_libcudnn;
  RN_SYM(h, cudnnGetVersion, "cudnnGetVersion");
  RN_SYM(h, cudnnGetCudartVersion, "cudnnGetCudartVersion");
  RN_SYM(h, cudnnGetErrorString, "cudnnGetErrorString");
  RN_SYM(h, cudnnCreate, "cudnnCreate");
  RN_SYM(h, cudnnDestroy, "cudnnDestroy");
  RN_SYM(h, cudnnSetStream, "cudnnSetStream");
  RN_SYM(h, cudnnCreateTensorDescriptor, "cudnnCreateTensorDescriptor");
  RN_SYM(h, cudnnDestroyTensorDescriptor, "cudnnDestroyTensorDescriptor");
  RN_SYM(h, cudnnSetTensor4dDescriptor, "cudnnSetTensor4dDescriptor");
  RN_SYM(h, cudnnCreateFilterDescriptor, "cudnnCreateFilterDescriptor");
  RN_SYM(h, cudnnDestroyFilterDescriptor, "cudnnDestroyFilterDescriptor");
  RN_SYM(h, cudnnSetFilter4dDescriptor, "cudnnSetFilter4dDescriptor");
  RN_SYM(h, cudnnCreateConvolutionDescriptor, "cudnnCreateConvolutionDescriptor");
  RN_SYM(h, cudnnDestroyConvolutionDescriptor, "cudnnDestroyConvolutionDescriptor");
  RN_SYM(h, cudnnSetConvolution2dDescriptor, "cudnnSetConvolution2dDescriptor");
  RN_SYM(h, cudnnSetConvolutionMathType, "cudnnSetConvolutionMathType");
  RN_SYM(h, cudnnSetConvolutionGroupCount, "cudnnSetConvolutionGroupCount");
  RN_SYM(h, cudnnGetConvolution2dForwardOutputDim, "cudnnGetConvolution2dForwardOutputDim");
  RN_SYM(h, cudnnFindConvolutionForwardAlgorithmEx, "cudnnFindConvolutionForwardAlgorithmEx");
  RN_SYM(h, cudnnGetConvolutionForwardAlgorithm_v7, "cudnnGetConvolutionForwardAlgorithm_v7");
  RN_SYM(h, cudnnGetConvolutionForwardWorkspaceSize, "cudnnGetConvolutionForwardWorkspaceSize");
  RN_SYM(h, cudnnConvolutionForward, "cudnnConvolutionForward");
  RN_SYM(h, cudnnFindConvolutionBackwardDataAlgorithmEx, "cudnnFindConvolutionBackwardDataAlgorithmEx");
  RN_SYM(h, cudnnGetConvolutionBackwardDataAlgorithm_v7, "cudnnGetConvolutionBackwardDataAlgorithm_v7");
  RN_SYM(h, cudnnGetConvolutionBackwardDataWorkspaceSize, "cudnnGetConvolutionBackwardDataWorkspaceSize");
  RN_SYM(h, cudnnConvolutionBackwardData, "cudnnConvolutionBackwardData");
  RN_SYM(h, cudnnFindConvolutionBackwardFilterAlgorithmEx, "cudnnFindConvolutionBackwardFilterAlgorithmEx");
  RN_SYM(h, cudnnGetConvolutionBackwardFilterAlgorithm_v7, "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
  RN_SYM(h, cudnnGetConvolutionBackwardFilterWorkspaceSize, "cudnnGetConvolutionBackwardFilterWorkspaceSize");
  RN_SYM(h, cudnnConvolutionBackwardFilter, "cudnnConvolutionBackwardFilter");
  return 0;
}

static size_t rn_cudnnGetVersion(void) { return p_cudnnGetVersion(); }
static size_t rn_cudnnGetCudartVersion(void) { return p_cudnnGetCudartVersion(); }
static const char* rn_cudnn_error_string(cudnnStatus_t s) {
  return p_cudnnGetErrorString ? p_cudnnGetErrorString(s) : NULL;
}
static cudnnStatus_t rn_cudnnCreate(cudnnHandle_t* h) { return p_cudnnCreate(h); }
static cudnnStatus_t rn_cudnnDestroy(cudnnHandle_t h) { return p_cudnnDestroy(h); }
static cudnnStatus_t rn_cudnnSetStream(cudnnHandle_t h, CUstream s) { return p_cudnnSetStream(h, (cudaStream_t)s); }

// rn_conv_descs creates and sets the tensor and filter descriptors of a convolution in groups: x (n, cin,
// h, w), w (cout, cin/groups, kh, kw), y (n, cout, oh, ow), all three of data type dt in format fmt. The
// dimensions are named in NCHW order whatever the format; a filter in CUDNN_TENSOR_NHWC is laid out KRSC
// (cout, kh, kw, cin/groups), in CUDNN_TENSOR_NCHW KCRS (cout, cin/groups, kh, kw).
static cudnnStatus_t rn_conv_descs(cudnnTensorDescriptor_t* xd, cudnnFilterDescriptor_t* wd,
                                   cudnnTensorDescriptor_t* yd, cudnnDataType_t dt, cudnnTensorFormat_t fmt, int n,
                                   int cin, int h, int w, int cout, int kh, int kw, int oh, int ow, int groups) {
  cudnnStatus_t s;
  *xd = NULL;
  *wd = NULL;
  *yd = NULL;
  if ((s = p_cudnnCreateTensorDescriptor(xd)) != CUDNN_STATUS_SUCCESS) return s;
  if ((s = p_cudnnSetTensor4dDescriptor(*xd, fmt, dt, n, cin, h, w)) != CUDNN_STATUS_SUCCESS) return s;
  if ((s = p_cudnnCreateFilterDescriptor(wd)) != CUDNN_STATUS_SUCCESS) return s;
  if ((s = p_cudnnSetFilter4dDescriptor(*wd, dt, fmt, cout, cin / groups, kh, kw)) != CUDNN_STATUS_SUCCESS) return s;
  if ((s = p_cudnnCreateTensorDescriptor(yd)) != CUDNN_STATUS_SUCCESS) return s;
  return p_cudnnSetTensor4dDescriptor(*yd, fmt, dt, n, cout, oh, ow);
}

static void rn_conv_descs_destroy(cudnnTensorDescriptor_t xd, cudnnFilterDescriptor_t wd,
                                  cudnnTensorDescriptor_t yd) {
  if (xd) p_cudnnDestroyTensorDescriptor(xd);
  if (wd) p_cudnnDestroyFilterDescriptor(wd);
  if (yd) p_cudnnDestroyTensorDescriptor(yd);
}

// rn_conv_desc creates a convolution descriptor. Its compute type is CUDNN_DATA_FLOAT for every data type:
// f32 accumulation is FLOAT_CONFIG for f32 tensors, PSEUDO_HALF_CONFIG for half and
// PSEUDO_BFLOAT16_CONFIG for bfloat16 (cuDNN has no true-bfloat16 configuration, and TRUE_HALF_CONFIG
// would accumulate in half). A group count above 1 makes it a grouped convolution.
static cudnnStatus_t rn_conv_desc(cudnnConvolutionDescriptor_t* cd, int pad_h, int pad_w, int stride, int math,
                                  int groups) {
  cudnnStatus_t s;
  *cd = NULL;
  if ((s = p_cudnnCreateConvolutionDescriptor(cd)) != CUDNN_STATUS_SUCCESS) return s;
  if ((s = p_cudnnSetConvolution2dDescriptor(*cd, pad_h, pad_w, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                             CUDNN_DATA_FLOAT)) != CUDNN_STATUS_SUCCESS)
    return s;
  if (groups > 1 && (s = p_cudnnSetConvolutionGroupCount(*cd, groups)) != CUDNN_STATUS_SUCCESS) return s;
  return p_cudnnSetConvolutionMathType(*cd, (cudnnMathType_t)math);
}

// rn_conv_out_dim is cuDNN's own (n, c, h, w) of a convolution's output.
static cudnnStatus_t rn_conv_out_dim(cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t xd,
                                     cudnnFilterDescriptor_t wd, int* n, int* c, int* h, int* w) {
  return p_cudnnGetConvolution2dForwardOutputDim(cd, xd, wd, n, c, h, w);
}

static void rn_conv_desc_destroy(cudnnConvolutionDescriptor_t cd) {
  if (cd) p_cudnnDestroyConvolutionDescriptor(cd);
}

// The Go side names the algorithms by their enum values (convAlgoNames) and reads the math types
// (mathFMA, mathDefault): a cuDNN that renumbers them must not build.
_Static_assert(CUDNN_CONVOLUTION_FWD_ALGO_COUNT == 8 && CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED == 7,
               "cuDNN's forward algorithms changed: update convAlgoNames");
_Static_assert(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT == 6 && CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED == 5,
               "cuDNN's backward-data algorithms changed: update convAlgoNames");
_Static_assert(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT == 7 && CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING == 6,
               "cuDNN's backward-filter algorithms changed: update convAlgoNames");

// rn_perf is one algorithm candidate of any direction.
typedef struct {
  int algo, status, determinism, math;
  float time;
  size_t memory;
} rn_perf;

#define RN_MAX_ALGOS 16

#define RN_COPY_PERF(p, got, out, n)             \
  do {                                           \
    for (int i = 0; i < got; i++) {              \
      out[i].algo = (int)p[i].algo;              \
      out[i].status = (int)p[i].status;          \
      out[i].determinism = (int)p[i].determinism; \
      out[i].math = (int)p[i].mathType;          \
      out[i].time = p[i].time;                   \
      out[i].memory = p[i].memory;               \
    }                                            \
    *n = got;                                    \
  } while (0)

// rn_conv_find measures the algorithms of one direction (0 forward, 1 backward data, 2 backward filter)
// on the given buffers (find != 0), or asks cuDNN's heuristics (find == 0). For direction 1, x is dx and y
// is dy; for direction 2, y is dy and w is dw.
static cudnnStatus_t rn_conv_find(int dir, int find, cudnnHandle_t h, cudnnTensorDescriptor_t xd,
                                  cudnnFilterDescriptor_t wd, cudnnConvolutionDescriptor_t cd,
                                  cudnnTensorDescriptor_t yd, CUdeviceptr x, CUdeviceptr w, CUdeviceptr y,
                                  CUdeviceptr ws, size_t ws_bytes, rn_perf* out, int* n) {
  int got = 0;
  cudnnStatus_t s;
  *n = 0;
  switch (dir) {
    case 0: {
      cudnnConvolutionFwdAlgoPerf_t p[RN_MAX_ALGOS];
      if (find)
        s = p_cudnnFindConvolutionForwardAlgorithmEx(h, xd, (const void*)x, wd, (const void*)w, cd, yd, (void*)y,
                                                     RN_MAX_ALGOS, &got, p, (void*)ws, ws_bytes);
      else
        s = p_cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, RN_MAX_ALGOS, &got, p);
      if (s == CUDNN_STATUS_SUCCESS) RN_COPY_PERF(p, got, out, n);
      return s;
    }
    case 1: {
      cudnnConvolutionBwdDataAlgoPerf_t p[RN_MAX_ALGOS];
      if (find)
        s = p_cudnnFindConvolutionBackwardDataAlgorithmEx(h, wd, (const void*)w, yd, (const void*)y, cd, xd,
                                                          (void*)x, RN_MAX_ALGOS, &got, p, (void*)ws, ws_bytes);
      else
        s = p_cudnnGetConvolutionBackwardDataAlgorithm_v7(h, wd, yd, cd, xd, RN_MAX_ALGOS, &got, p);
      if (s == CUDNN_STATUS_SUCCESS) RN_COPY_PERF(p, got, out, n);
      return s;
    }
    default: {
      cudnnConvolutionBwdFilterAlgoPerf_t p[RN_MAX_ALGOS];
      if (find)
        s = p_cudnnFindConvolutionBackwardFilterAlgorithmEx(h, xd, (const void*)x, yd, (const void*)y, cd, wd,
                                                            (void*)w, RN_MAX_ALGOS, &got, p, (void*)ws, ws_bytes);
      else
        s = p_cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, xd, yd, cd, wd, RN_MAX_ALGOS, &got, p);
      if (s == CUDNN_STATUS_SUCCESS) RN_COPY_PERF(p, got, out, n);
      return s;
    }
  }
}

static cudnnStatus_t rn_conv_workspace(int dir, cudnnHandle_t h, cudnnTensorDescriptor_t xd,
                                       cudnnFilterDescriptor_t wd, cudnnConvolutionDescriptor_t cd,
                                       cudnnTensorDescriptor_t yd, int algo, size_t* bytes) {
  switch (dir) {
    case 0:
      return p_cudnnGetConvolutionForwardWorkspaceSize(h, xd, wd, cd, yd, (cudnnConvolutionFwdAlgo_t)algo, bytes);
    case 1:
      return p_cudnnGetConvolutionBackwardDataWorkspaceSize(h, wd, yd, cd, xd, (cudnnConvolutionBwdDataAlgo_t)algo,
                                                            bytes);
    default:
      return p_cudnnGetConvolutionBackwardFilterWorkspaceSize(h, xd, yd, cd, wd,
                                                              (cudnnConvolutionBwdFilterAlgo_t)algo, bytes);
  }
}

// rn_conv runs one direction: forward y = conv(x, w) (+ beta*y); backward data x = dx from y = dy
// (+ beta*dx); backward filter w = dw from x and y = dy (+ beta*dw).
static cudnnStatus_t rn_conv(int dir, cudnnHandle_t h, cudnnTensorDescriptor_t xd, cudnnFilterDescriptor_t wd,
                             cudnnConvolutionDescriptor_t cd, cudnnTensorDescriptor_t yd, int algo, CUdeviceptr x,
                             CUdeviceptr w, CUdeviceptr y, CUdeviceptr ws, size_t ws_bytes, float beta) {
  const float alpha = 1.f;
  switch (dir) {
    case 0:
      return p_cudnnConvolutionForward(h, &alpha, xd, (const void*)x, wd, (const void*)w, cd,
                                       (cudnnConvolutionFwdAlgo_t)algo, (void*)ws, ws_bytes, &beta, yd, (void*)y);
    case 1:
      return p_cudnnConvolutionBackwardData(h, &alpha, wd, (const void*)w, yd, (const void*)y, cd,
                                            (cudnnConvolutionBwdDataAlgo_t)algo, (void*)ws, ws_bytes, &beta, xd,
                                            (void*)x);
    default:
      return p_cudnnConvolutionBackwardFilter(h, &alpha, xd, (const void*)x, yd, (const void*)y, cd,
                                              (cudnnConvolutionBwdFilterAlgo_t)algo, (void*)ws, ws_bytes, &beta,
                                              wd, (void*)w);
  }
}

// ---- cuBLAS ---------------------------------------------------------------------------------------------
RN_FN(cublasCreate);
RN_FN(cublasDestroy);
RN_FN(cublasSetStream);
RN_FN(cublasSetMathMode);
RN_FN(cublasSetWorkspace);
RN_FN(cublasSgemm);
RN_FN(cublasGetStatusString);
RN_FN(cublasGetVersion);

static void* rn_libcublas;

static int rn_load_cublas(const char* lib) {
  if (rn_open(&rn_libcublas, lib)) return 1;
  void* h = rn_libcublas;
  RN_SYM(h, cublasCreate, "cublasCreate_v2");
  RN_SYM(h, cublasDestroy, "cublasDestroy_v2");
  RN_SYM(h, cublasSetStream, "cublasSetStream_v2");
  RN_SYM(h, cublasSetMathMode, "cublasSetMathMode");
  RN_SYM(h, cublasSetWorkspace, "cublasSetWorkspace_v2");
  RN_SYM(h, cublasSgemm, "cublasSgemm_v2");
  RN_SYM(h, cublasGetStatusString, "cublasGetStatusString");
  RN_SYM(h, cublasGetVersion, "cublasGetVersion_v2");
  return 0;
}

static const char* rn_cublas_status_string(cublasStatus_t s) {
  return p_cublasGetStatusString ? p_cublasGetStatusString(s) : NULL;
}
static cublasStatus_t rn_cublasCreate(cublasHandle_t* h) { return p_cublasCreate(h); }
static cublasStatus_t rn_cublasDestroy(cublasHandle_t h) { return p_cublasDestroy(h); }
static cublasStatus_t rn_cublasGetVersion(cublasHandle_t h, int* v) { return p_cublasGetVersion(h, v); }
static cublasStatus_t rn_cublasSetStream(cublasHandle_t h, CUstream s) {
  return p_cublasSetStream(h, (cudaStream_t)s);
}
static cublasStatus_t rn_cublasSetMathMode(cublasHandle_t h, int tf32) {
  return p_cublasSetMathMode(h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
}
static cublasStatus_t rn_cublasSetWorkspace(cublasHandle_t h, CUdeviceptr ws, size_t bytes) {
  return p_cublasSetWorkspace(h, (void*)ws, bytes);
}

// rn_sgemm is column-major C (m, n) = op(A) op(B) + beta*C with alpha 1.
static cublasStatus_t rn_sgemm(cublasHandle_t h, int ta, int tb, int m, int n, int k, CUdeviceptr a, int lda,
                               CUdeviceptr b, int ldb, float beta, CUdeviceptr c, int ldc) {
  const float alpha = 1.f;
  return p_cublasSgemm(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha,
                       (const float*)a, lda, (const float*)b, ldb, &beta, (float*)c, ldc);
}
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	"resnet/internal/backend"
)

// ---- loading the libraries ------------------------------------------------------------------------------

var (
	driverOnce sync.Once
	driverErr  error
	cudnnOnce  sync.Once
	cudnnErr   error
	cublasOnce sync.Once
	cublasErr  error
	cublasLib  string
)

// loadDriver opens libcuda.so.1 once per process.
func loadDriver() error {
	driverOnce.Do(func() {
		switch C.rn_load_driver() {
		case 1:
			driverErr = fmt.Errorf("cuda: libcuda.so.1 not found (no NVIDIA driver on this machine?): %s", C.GoString(C.rn_message()))
		case 2:
			driverErr = fmt.Errorf("cuda: libcuda.so.1 has no %s: the NVIDIA driver is too old for CUDA 13", C.GoString(C.rn_message()))
		}
	})
	return driverErr
}

// loadCUDNN opens libcudnn.so.9 once per process.
func loadCUDNN() error {
	cudnnOnce.Do(func() {
		switch C.rn_load_cudnn() {
		case 1:
			cudnnErr = fmt.Errorf("cuda: libcudnn.so.9 not found; on the GPU machine source scripts/gpu-env.sh: %s", C.GoString(C.rn_message()))
		case 2:
			cudnnErr = fmt.Errorf("cuda: libcudnn.so.9 has no %s: cuDNN 9 is needed", C.GoString(C.rn_message()))
		}
	})
	return cudnnErr
}

// loadCUBLAS opens libcublas.so.13, or libcublas.so.12 when 13 is absent, once per process.
func loadCUBLAS() error {
	cublasOnce.Do(func() {
		var first string
		for _, lib := range []string{"libcublas.so.13", "libcublas.so.12"} {
			cs := C.CString(lib)
			r := C.rn_load_cublas(cs)
			C.free(unsafe.Pointer(cs))
			switch r {
			case 0:
				cublasLib = lib
				return
			case 1:
				if first == "" {
					first = C.GoString(C.rn_message())
				}
			case 2:
				cublasErr = fmt.Errorf("cuda: %s has no %s", lib, C.GoString(C.rn_message()))
				return
			}
		}
		cublasErr = fmt.Errorf("cuda: libcublas.so.13 (or .12) not found; on the GPU machine source scripts/gpu-env.sh: %s", first)
	})
	return cublasErr
}

// gpuCount is the number of CUDA devices the driver shows this process.
func gpuCount() (int, error) {
	if err := loadDriver(); err != nil {
		return 0, err
	}
	if err := cuErr(C.rn_cuInit(), "cuInit"); err != nil {
		return 0, err
	}
	var n C.int
	err := cuErr(C.rn_cuDeviceGetCount(&n), "cuDeviceGetCount")
	return int(n), err
}

// ---- status codes to errors -----------------------------------------------------------------------------

func cuErr(r C.CUresult, call string) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	return cuError(r, call)
}

func cuError(r C.CUresult, call string) *Error {
	name := fmt.Sprintf("CUresult(%d)", int(r))
	if s := C.rn_cu_error_name(r); s != nil {
		name = C.GoString(s)
	}
	return &Error{Call: call, Status: int(r), Name: name}
}

func cudnnErrOf(s C.cudnnStatus_t, call string) error {
	if s == C.CUDNN_STATUS_SUCCESS {
		return nil
	}
	name := fmt.Sprintf("cudnnStatus_t(%d)", int(s))
	if p := C.rn_cudnn_error_string(s); p != nil {
		name = C.GoString(p)
	}
	return &Error{Call: call, Status: int(s), Name: name}
}

func cublasErrOf(s C.cublasStatus_t, call string) error {
	if s == C.CUBLAS_STATUS_SUCCESS {
		return nil
	}
	name := fmt.Sprintf("cublasStatus_t(%d)", int(s))
	if p := C.rn_cublas_status_string(s); p != nil {
		name = C.GoString(p)
	}
	return &Error{Call: call, Status: int(s), Name: name}
}

// ---- the driver state of one device ---------------------------------------------------------------------

// stageSlots is the number of pinned staging buffers uploads rotate through.
const stageSlots = 4

// cublasWorkspaceBytes is the workspace given to cuBLAS (its recommendation for Hopper), so that it never
// allocates on its own.
const cublasWorkspaceBytes = 32 << 20

// driver holds the C handles of one device. Only the owner goroutine calls its methods.
type driver struct {
	dev        C.CUdevice
	ctx        C.CUcontext
	retained   bool
	compute    C.CUstream
	copy       C.CUstream
	computeEv  C.CUevent // marks a point on the compute stream the copy stream must wait for
	copyEv     C.CUevent // marks a point on the copy stream the compute stream must wait for
	slotEv     [stageSlots]C.CUevent
	module     C.CUmodule
	funcs      [numKernels]C.CUfunction
	cudnn      C.cudnnHandle_t
	cublas     C.cublasHandle_t
	cublasWS   C.CUdeviceptr
	argBuf     *C.uint64_t // kernel arguments of the launch being made (C memory)
	convMath   C.int       // cudnnMathType_t that convolution algorithms are listed with
	haveModule bool
	graphs     map[uint64]driverGraph // recorded graphs by the device's id
	comms      map[uint64]ncclComm    // NCCL communicators by the device's id (nccl.go)
}

// driverGraph is a graph recorded by stream capture and its executable instance.
type driverGraph struct {
	graph C.CUgraph
	exec  C.CUgraphExec
}

// deviceInfo describes the opened GPU.
type deviceInfo struct {
	name               string
	ordinal            int
	major, minor       int
	sms                int
	totalMem, freeMem  int64
	driverVersion      int // CUDA version the driver supports, 1000*major + 10*minor (cuDriverGetVersion)
	cudnnVersion       int // 10000*major + 100*minor + patch
	cublasLib          string
	maxGridY, maxGridX int

	// For the reproducibility record: the kernel driver's release, the CUDA runtime cuDNN was built for
	// (1000*major + 10*minor) and cuBLAS's version (10000*major + 100*minor + patch).
	nvidiaDriver  string
	cudnnCudart   int
	cublasVersion int
}

// open initialises the context, streams, events, kernels and library handles on the calling (owner)
// thread; named describes the ordinal for errors (deviceOrdinal). On error everything created so far is
// released.
func (dr *driver) open(ordinal int, named string, tf32 bool, fatbin []byte) (info deviceInfo, err error) {
	defer func() {
		if err != nil {
			dr.close()
		}
	}()
	info.ordinal = ordinal
	if r := C.rn_cuInit(); r != C.CUDA_SUCCESS {
		if r == C.CUDA_ERROR_NO_DEVICE {
			return info, fmt.Errorf("cuda: no CUDA device found")
		}
		if r == C.CUDA_ERROR_SYSTEM_DRIVER_MISMATCH || r == C.CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE {
			return info, fmt.Errorf("%w (the NVIDIA kernel module and libcuda.so.1 do not match, or the driver is too old for CUDA 13)", cuError(r, "cuInit"))
		}
		return info, cuError(r, "cuInit")
	}
	var v C.int
	if err := cuErr(C.rn_cuDriverGetVersion(&v), "cuDriverGetVersion"); err != nil {
		return info, err
	}
	info.driverVersion = int(v)
	var count C.int
	if err := cuErr(C.rn_cuDeviceGetCount(&count), "cuDeviceGetCount"); err != nil {
		return info, err
	}
	if count == 0 {
		return info, fmt.Errorf("cuda: no CUDA device found")
	}
	if ordinal < 0 || ordinal >= int(count) {
		return info, fmt.Errorf("cuda: %s does not exist: this machine has %d CUDA device(s) (0..%d)", named, int(count), int(count)-1)
	}
	if err := cuErr(C.rn_cuDeviceGet(&dr.dev, C.int(ordinal)), fmt.Sprintf("cuDeviceGet(%d)", ordinal)); err != nil {
		return info, err
	}
	var name [256]C.char
	if err := cuErr(C.rn_cuDeviceGetName(&name[0], C.int(len(name)), dr.dev), "cuDeviceGetName"); err != nil {
		return info, err
	}
	info.name = C.GoString(&name[0])
	attr := func(a C.int, what string) (int, error) {
		var x C.int
		err := cuErr(C.rn_cuDeviceGetAttribute(&x, a, dr.dev), "cuDeviceGetAttribute("+what+")")
		return int(x), err
	}
	if info.major, err = attr(C.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "COMPUTE_CAPABILITY_MAJOR"); err != nil {
		return info, err
	}
	if info.minor, err = attr(C.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "COMPUTE_CAPABILITY_MINOR"); err != nil {
		return info, err
	}
	if info.sms, err = attr(C.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "MULTIPROCESSOR_COUNT"); err != nil {
		return info, err
	}
	if info.maxGridX, err = attr(C.CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X, "MAX_GRID_DIM_X"); err != nil {
		return info, err
	}
	if info.maxGridY, err = attr(C.CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y, "MAX_GRID_DIM_Y"); err != nil {
		return info, err
	}
	if info.major < 8 {
		return info, fmt.Errorf("cuda: %s has compute capability %d.%d; the kernels are built for 8.0 and newer", info.name, info.major, info.minor)
	}
	if err := cuErr(C.rn_cuDevicePrimaryCtxRetain(&dr.ctx, dr.dev), "cuDevicePrimaryCtxRetain"); err != nil {
		return info, err
	}
	dr.retained = true
	if err := cuErr(C.rn_cuCtxSetCurrent(dr.ctx), "cuCtxSetCurrent"); err != nil {
		return info, err
	}
	var free, total C.size_t
	if err := cuErr(C.rn_cuMemGetInfo(&free, &total), "cuMemGetInfo"); err != nil {
		return info, err
	}
	info.freeMem, info.totalMem = int64(free), int64(total)
	if err := cuErr(C.rn_cuStreamCreate(&dr.compute), "cuStreamCreate(compute)"); err != nil {
		return info, err
	}
	if err := cuErr(C.rn_cuStreamCreate(&dr.copy), "cuStreamCreate(copy)"); err != nil {
		return info, err
	}
	// Events are created into a local: a pointer into the Device would make cgo's pointer check scan the
	// whole Device for Go pointers (and fail).
	newEvent := func() (C.CUevent, error) {
		var ev C.CUevent
		err := cuErr(C.rn_cuEventCreate(&ev), "cuEventCreate")
		return ev, err
	}
	if dr.computeEv, err = newEvent(); err != nil {
		return info, err
	}
	if dr.copyEv, err = newEvent(); err != nil {
		return info, err
	}
	for i := range dr.slotEv {
		if dr.slotEv[i], err = newEvent(); err != nil {
			return info, err
		}
	}
	dr.argBuf = (*C.uint64_t)(C.malloc(C.size_t(8 * maxKernelArgs)))
	if dr.argBuf == nil {
		return info, fmt.Errorf("cuda: out of host memory")
	}
	if len(fatbin) == 0 {
		return info, fmt.Errorf("cuda: the embedded kernels.fatbin is empty; rebuild with 'make kernels cuda'")
	}
	if r := C.rn_cuModuleLoadData(&dr.module, unsafe.Pointer(&fatbin[0])); r != C.CUDA_SUCCESS {
		e := cuError(r, "cuModuleLoadData(kernels.fatbin)")
		switch r {
		case C.CUDA_ERROR_NO_BINARY_FOR_GPU, C.CUDA_ERROR_UNSUPPORTED_PTX_VERSION, C.CUDA_ERROR_INVALID_PTX:
			return info, fmt.Errorf("%w: the kernels (sm_80, sm_90, compute_90 PTX from CUDA 13.0) do not run on %s (compute capability %d.%d) with driver %d",
				e, info.name, info.major, info.minor, info.driverVersion)
		}
		return info, e
	}
	dr.haveModule = true
	for id := range dr.funcs {
		cs := C.CString(kernelTable[id].name)
		var f C.CUfunction
		r := C.rn_cuModuleGetFunction(&f, dr.module, cs)
		dr.funcs[id] = f
		C.free(unsafe.Pointer(cs))
		if r != C.CUDA_SUCCESS {
			return info, fmt.Errorf("%w: kernel %s is missing from kernels.fatbin; rebuild it with 'make kernels'",
				cuError(r, "cuModuleGetFunction("+kernelTable[id].name+")"), kernelTable[id].name)
		}
	}

	if err := loadCUDNN(); err != nil {
		return info, err
	}
	info.cudnnVersion = int(C.rn_cudnnGetVersion())
	info.cudnnCudart = int(C.rn_cudnnGetCudartVersion())
	if info.cudnnVersion < 90000 {
		return info, fmt.Errorf("cuda: libcudnn.so.9 reports version %d; cuDNN 9 is needed", info.cudnnVersion)
	}
	if err := cudnnErrOf(C.rn_cudnnCreate(&dr.cudnn), "cudnnCreate"); err != nil {
		return info, err
	}
	if err := cudnnErrOf(C.rn_cudnnSetStream(dr.cudnn, dr.compute), "cudnnSetStream"); err != nil {
		return info, err
	}
	// FMA math keeps fp32 convolutions off TF32 tensor cores (DEFAULT math would allow TF32 on sm_80+).
	dr.convMath = C.CUDNN_FMA_MATH
	if tf32 {
		dr.convMath = C.CUDNN_DEFAULT_MATH
	}

	if err := loadCUBLAS(); err != nil {
		return info, err
	}
	info.cublasLib = cublasLib
	if err := cublasErrOf(C.rn_cublasCreate(&dr.cublas), "cublasCreate"); err != nil {
		return info, err
	}
	if err := cublasErrOf(C.rn_cublasSetStream(dr.cublas, dr.compute), "cublasSetStream"); err != nil {
		return info, err
	}
	var cv C.int
	if err := cublasErrOf(C.rn_cublasGetVersion(dr.cublas, &cv), "cublasGetVersion"); err != nil {
		return info, err
	}
	info.cublasVersion = int(cv)
	tf := C.int(0)
	if tf32 {
		tf = 1
	}
	if err := cublasErrOf(C.rn_cublasSetMathMode(dr.cublas, tf), "cublasSetMathMode"); err != nil {
		return info, err
	}
	if err := cuErr(C.rn_cuMemAlloc(&dr.cublasWS, cublasWorkspaceBytes), fmt.Sprintf("cuMemAlloc(%d bytes)", cublasWorkspaceBytes)); err != nil {
		return info, err
	}
	if err := cublasErrOf(C.rn_cublasSetWorkspace(dr.cublas, dr.cublasWS, cublasWorkspaceBytes), "cublasSetWorkspace"); err != nil {
		return info, err
	}
	return info, nil
}

// close releases everything open created, in reverse order. It is safe on a partly opened driver.
func (dr *driver) close() {
	if dr.retained {
		C.rn_cuCtxSynchronize()
	}
	for id := range dr.graphs {
		dr.graphDestroy(id) //nolint:errcheck // closing anyway
	}
	dr.abortCollectives()
	if dr.cublas != nil {
		C.rn_cublasDestroy(dr.cublas)
		dr.cublas = nil
	}
	if dr.cublasWS != 0 {
		C.rn_cuMemFree(dr.cublasWS)
		dr.cublasWS = 0
	}
	if dr.cudnn != nil {
		C.rn_cudnnDestroy(dr.cudnn)
		dr.cudnn = nil
	}
	if dr.haveModule {
		C.rn_cuModuleUnload(dr.module)
		dr.haveModule = false
	}
	for i := range dr.slotEv {
		if dr.slotEv[i] != nil {
			C.rn_cuEventDestroy(dr.slotEv[i])
			dr.slotEv[i] = nil
		}
	}
	if dr.computeEv != nil {
		C.rn_cuEventDestroy(dr.computeEv)
		dr.computeEv = nil
	}
	if dr.copyEv != nil {
		C.rn_cuEventDestroy(dr.copyEv)
		dr.copyEv = nil
	}
	if dr.compute != nil {
		C.rn_cuStreamDestroy(dr.compute)
		dr.compute = nil
	}
	if dr.copy != nil {
		C.rn_cuStreamDestroy(dr.copy)
		dr.copy = nil
	}
	if dr.argBuf != nil {
		C.free(unsafe.Pointer(dr.argBuf))
		dr.argBuf = nil
	}
	if dr.retained {
		C.rn_cuDevicePrimaryCtxRelease(dr.dev)
		dr.retained = false
	}
}

// memAlloc allocates device memory; an out-of-memory error satisfies errors.Is(err, errOutOfMemory).
func (dr *driver) memAlloc(bytes int64) (uint64, error) {
	var p C.CUdeviceptr
	if r := C.rn_cuMemAlloc(&p, C.size_t(bytes)); r != C.CUDA_SUCCESS {
		return 0, cuError(r, fmt.Sprintf("cuMemAlloc(%d bytes)", bytes))
	}
	return uint64(p), nil
}

// memFree waits for the device to finish all queued work, then frees the blocks.
func (dr *driver) memFree(blocks []uint64) error {
	err := cuErr(C.rn_cuCtxSynchronize(), "cuCtxSynchronize")
	for _, b := range blocks {
		if e := cuErr(C.rn_cuMemFree(C.CUdeviceptr(b)), "cuMemFree"); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// hostAlloc allocates pinned host memory (C memory: Go may keep pointers to it).
func (dr *driver) hostAlloc(bytes int64) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	if r := C.rn_cuMemHostAlloc(&p, C.size_t(bytes)); r != C.CUDA_SUCCESS {
		return nil, cuError(r, fmt.Sprintf("cuMemHostAlloc(%d bytes)", bytes))
	}
	return p, nil
}

// hostFree frees pinned host memory after the device has finished with it.
func (dr *driver) hostFree(p unsafe.Pointer) error {
	if err := cuErr(C.rn_cuCtxSynchronize(), "cuCtxSynchronize"); err != nil {
		return err
	}
	return cuErr(C.rn_cuMemFreeHost(p), "cuMemFreeHost")
}

func (dr *driver) memInfo() (free, total int64, err error) {
	var f, t C.size_t
	err = cuErr(C.rn_cuMemGetInfo(&f, &t), "cuMemGetInfo")
	return int64(f), int64(t), err
}

// ---- executing queued commands --------------------------------------------------------------------------

// exec runs one command on the owner thread. Synchronous commands (those with done set) are answered by
// the caller of exec. cmdFunc commands run their function with dr.
func (dr *driver) exec(c *cmd) error {
	switch c.kind {
	case cmdLaunch:
		// The arguments go through C memory: no Go pointer crosses into C, and nothing is allocated.
		copy(unsafe.Slice((*uint64)(unsafe.Pointer(dr.argBuf)), maxKernelArgs), c.args[:c.nargs])
		r := C.rn_launch(dr.funcs[c.kernel], C.uint(c.grid[0]), C.uint(c.grid[1]), C.uint(c.grid[2]), C.uint(blockSize),
			dr.compute, dr.argBuf, C.int(c.nargs))
		if r != C.CUDA_SUCCESS {
			return cuError(r, fmt.Sprintf("cuLaunchKernel(%s, grid %v)", kernelTable[c.kernel].name, c.grid))
		}
	case cmdMemset:
		if r := C.rn_cuMemsetD8Async(C.CUdeviceptr(c.dst), 0, C.size_t(c.n), dr.compute); r != C.CUDA_SUCCESS {
			return cuError(r, fmt.Sprintf("cuMemsetD8Async(%d bytes)", c.n))
		}
	case cmdCopyDtoD:
		if r := C.rn_cuMemcpyDtoDAsync(C.CUdeviceptr(c.dst), C.CUdeviceptr(c.src), C.size_t(c.n), dr.compute); r != C.CUDA_SUCCESS {
			return cuError(r, fmt.Sprintf("cuMemcpyDtoDAsync(%d bytes)", c.n))
		}
	case cmdCopyHtoD:
		if r := C.rn_cuMemcpyHtoDAsync(C.CUdeviceptr(c.dst), c.host, C.size_t(c.n), dr.compute); r != C.CUDA_SUCCESS {
			return cuError(r, fmt.Sprintf("cuMemcpyHtoDAsync(%d bytes)", c.n))
		}
	case cmdUpload:
		return dr.upload(c)
	case cmdDownload:
		return dr.download(c)
	case cmdSync:
		if err := cuErr(C.rn_cuStreamSynchronize(dr.compute), "cuStreamSynchronize(compute)"); err != nil {
			return err
		}
		return cuErr(C.rn_cuStreamSynchronize(dr.copy), "cuStreamSynchronize(copy)")
	case cmdWaitSlot:
		return cuErr(C.rn_cuEventSynchronize(dr.slotEv[c.slot]), "cuEventSynchronize(staging)")
	case cmdConv:
		return dr.conv(c)
	case cmdGemm:
		g := &c.gemm
		s := C.rn_sgemm(dr.cublas, C.int(g.ta), C.int(g.tb), C.int(g.m), C.int(g.n), C.int(g.k), C.CUdeviceptr(g.a), C.int(g.lda),
			C.CUdeviceptr(g.b), C.int(g.ldb), C.float(g.beta), C.CUdeviceptr(g.c), C.int(g.ldc))
		if s != C.CUBLAS_STATUS_SUCCESS {
			return cublasErrOf(s, fmt.Sprintf("cublasSgemm(m %d, n %d, k %d)", g.m, g.n, g.k))
		}
	case cmdGraph:
		g, ok := dr.graphs[c.graph]
		if !ok {
			return fmt.Errorf("cuda: internal error: launching graph %d, which does not exist", c.graph)
		}
		if r := C.rn_cuGraphLaunch(g.exec, dr.compute); r != C.CUDA_SUCCESS {
			return cuError(r, "cuGraphLaunch")
		}
	case cmdCollective:
		return dr.collective(c)
	case cmdFunc, cmdGraphCtl:
		return c.fn(dr)
	default:
		return fmt.Errorf("cuda: internal error: unknown command %d", c.kind)
	}
	return nil
}

// graphBegin starts stream capture on the compute stream: its work is recorded from here on, not run.
func (dr *driver) graphBegin() error {
	return cuErr(C.rn_cuStreamBeginCapture(dr.compute), "cuStreamBeginCapture(compute)")
}

// graphEnd ends the capture and, with keep, instantiates what it recorded as graph id.
func (dr *driver) graphEnd(id uint64, keep bool) error {
	var g C.CUgraph
	if r := C.rn_cuStreamEndCapture(dr.compute, &g); r != C.CUDA_SUCCESS {
		if g != nil {
			C.rn_cuGraphDestroy(g)
		}
		return fmt.Errorf("%w (an operation broke the stream capture)", cuError(r, "cuStreamEndCapture(compute)"))
	}
	if g == nil {
		// cuStreamEndCapture returns no graph when the capture was invalidated.
		return fmt.Errorf("cuda: cuStreamEndCapture(compute) returned no graph: an operation invalidated the capture")
	}
	if !keep {
		return cuErr(C.rn_cuGraphDestroy(g), "cuGraphDestroy")
	}
	var ex C.CUgraphExec
	if r := C.rn_cuGraphInstantiate(&ex, g); r != C.CUDA_SUCCESS {
		C.rn_cuGraphDestroy(g)
		return cuError(r, "cuGraphInstantiate")
	}
	if dr.graphs == nil {
		dr.graphs = map[uint64]driverGraph{}
	}
	dr.graphs[id] = driverGraph{graph: g, exec: ex}
	return nil
}

// graphDestroy frees graph id: a launch of it still running finishes first (cuGraphExecDestroy frees an
// executing graph when it completes).
func (dr *driver) graphDestroy(id uint64) error {
	g, ok := dr.graphs[id]
	if !ok {
		return fmt.Errorf("cuda: internal error: destroying graph %d, which does not exist", id)
	}
	delete(dr.graphs, id)
	err := cuErr(C.rn_cuGraphExecDestroy(g.exec), "cuGraphExecDestroy")
	if e := cuErr(C.rn_cuGraphDestroy(g.graph), "cuGraphDestroy"); e != nil && err == nil {
		err = e
	}
	return err
}

// upload copies c.n bytes from pinned host memory to the device on the copy stream, after the compute
// work queued so far (which may still read the destination) and before the compute work queued later.
// With c.slot >= 0 the staging slot's event records the copy's completion; with c.wait the call returns
// only once the copy is done (the source belongs to the caller).
func (dr *driver) upload(c *cmd) error {
	if err := cuErr(C.rn_cuEventRecord(dr.computeEv, dr.compute), "cuEventRecord(compute)"); err != nil {
		return err
	}
	if err := cuErr(C.rn_cuStreamWaitEvent(dr.copy, dr.computeEv), "cuStreamWaitEvent(copy)"); err != nil {
		return err
	}
	if r := C.rn_cuMemcpyHtoDAsync(C.CUdeviceptr(c.dst), c.host, C.size_t(c.n), dr.copy); r != C.CUDA_SUCCESS {
		return cuError(r, fmt.Sprintf("cuMemcpyHtoDAsync(%d bytes)", c.n))
	}
	if err := cuErr(C.rn_cuEventRecord(dr.copyEv, dr.copy), "cuEventRecord(copy)"); err != nil {
		return err
	}
	if err := cuErr(C.rn_cuStreamWaitEvent(dr.compute, dr.copyEv), "cuStreamWaitEvent(compute)"); err != nil {
		return err
	}
	if c.slot >= 0 {
		if err := cuErr(C.rn_cuEventRecord(dr.slotEv[c.slot], dr.copy), "cuEventRecord(staging)"); err != nil {
			return err
		}
	}
	if c.wait {
		return cuErr(C.rn_cuEventSynchronize(dr.copyEv), "cuEventSynchronize(upload)")
	}
	return nil
}

// download copies c.n bytes from the device into pinned host memory once the compute work queued so far
// has finished, and waits for the copy.
func (dr *driver) download(c *cmd) error {
	if err := cuErr(C.rn_cuEventRecord(dr.computeEv, dr.compute), "cuEventRecord(compute)"); err != nil {
		return err
	}
	if err := cuErr(C.rn_cuStreamWaitEvent(dr.copy, dr.computeEv), "cuStreamWaitEvent(copy)"); err != nil {
		return err
	}
	if r := C.rn_cuMemcpyDtoHAsync(c.host, C.CUdeviceptr(c.src), C.size_t(c.n), dr.copy); r != C.CUDA_SUCCESS {
		return cuError(r, fmt.Sprintf("cuMemcpyDtoHAsync(%d bytes)", c.n))
	}
	return cuErr(C.rn_cuStreamSynchronize(dr.copy), "cuStreamSynchronize(copy)")
}

// ---- convolutions ---------------------------------------------------------------------------------------

// convDir is a convolution direction, numbered as rn_conv takes them.
type convDir int

const (
	convForward convDir = iota
	convBackwardData
	convBackwardFilter
)

func (d convDir) String() string {
	return [...]string{"forward", "backward data", "backward filter"}[d]
}

// convPlan is the cuDNN state of one convolution geometry: its tensor and filter descriptors, the
// convolution descriptor that candidates are listed with, and per direction and operand alignment
// the chosen algorithm with its own convolution descriptor.
type convPlan struct {
	geom convGeom
	xd   C.cudnnTensorDescriptor_t
	wd   C.cudnnFilterDescriptor_t
	yd   C.cudnnTensorDescriptor_t
	cd   C.cudnnConvolutionDescriptor_t
	algo map[algoKey]*convAlgo
}

// algoKey picks a chosen algorithm: some algorithms need 16-byte aligned operands, and a view into the
// parameter table may not be.
type algoKey struct {
	dir   convDir
	align uint8 // bit i set: operand i (x, w, y) is 16-byte aligned
}

// convAlgo is a chosen algorithm, ready to run.
type convAlgo struct {
	cd            C.cudnnConvolutionDescriptor_t
	algo          int
	ws            int64 // workspace bytes
	deterministic bool
	chosenBy      string // how it was chosen (chosenByHeuristic, ...)
}

// The cuDNN math types the choice reads (cudnnMathType_t).
const (
	mathDefault  = int(C.CUDNN_DEFAULT_MATH)
	mathFMA      = int(C.CUDNN_FMA_MATH)
	mathTensorOp = int(C.CUDNN_TENSOR_OP_MATH)
)

// convAlgoNames are cuDNN's algorithms per direction, indexed by their enum values (checked against the
// headers by the _Static_asserts above).
var convAlgoNames = [...][]string{
	convForward: {"CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM", "CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM",
		"CUDNN_CONVOLUTION_FWD_ALGO_GEMM", "CUDNN_CONVOLUTION_FWD_ALGO_DIRECT", "CUDNN_CONVOLUTION_FWD_ALGO_FFT",
		"CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING", "CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD",
		"CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED"},
	convBackwardData: {"CUDNN_CONVOLUTION_BWD_DATA_ALGO_0", "CUDNN_CONVOLUTION_BWD_DATA_ALGO_1",
		"CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT", "CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING",
		"CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD", "CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED"},
	convBackwardFilter: {"CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0", "CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1",
		"CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT", "CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3",
		"CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD", "CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED",
		"CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING"},
}

// newConvPlan creates the descriptors of a geometry: x, w and y in the geometry's data type and layout (the
// filter being the device's converted copy, or cuDNN's filter gradient before it is converted back, when
// that is not f32 NCHW), f32 accumulation, and candidates listed with TENSOR_OP math for 16-bit data (so
// that the tensor-core kernels are among them; DEFAULT math keeps 16-bit data off tensor cores before
// sm_80, and TENSOR_OP_MATH_ALLOW_CONVERSION only adds down-conversion of f32 data, which has none to do)
// and with the device's f32 math otherwise (FMA, or DEFAULT under RESNET_CUDA_TF32=1).
func (dr *driver) newConvPlan(g convGeom) (*convPlan, error) {
	return makeConvPlan(g, int(dr.convMath))
}

// makeConvPlan is newConvPlan with the math type of f32 data given (mathFMA or mathDefault). It needs no
// device: cuDNN's descriptor calls run wherever libcudnn.so.9 loads, which is how the descriptors of every
// activation format are validated on machines without a GPU (TestConvDescriptorsWithoutGPU). It also
// checks cuDNN's output dimensions against the geometry's, so that a plan cuDNN reads differently from
// the operand checks is refused before anything runs.
func makeConvPlan(g convGeom, f32Math int) (*convPlan, error) {
	if err := loadCUDNN(); err != nil {
		return nil, err
	}
	p := &convPlan{geom: g, algo: map[algoKey]*convAlgo{}}
	s := C.rn_conv_descs(&p.xd, &p.wd, &p.yd, cudnnDataType(g.DType), cudnnFormat(g.Layout), C.int(g.N), C.int(g.Cin),
		C.int(g.H), C.int(g.W), C.int(g.Cout), C.int(g.KH), C.int(g.KW), C.int(g.OH), C.int(g.OW), C.int(max(g.Groups, 1)))
	if err := cudnnErrOf(s, "cudnnSetTensor4dDescriptor/cudnnSetFilter4dDescriptor("+g.String()+")"); err != nil {
		C.rn_conv_descs_destroy(p.xd, p.wd, p.yd)
		return nil, err
	}
	math := C.int(f32Math)
	if g.DType != backend.F32 {
		math = C.CUDNN_TENSOR_OP_MATH
	}
	s = C.rn_conv_desc(&p.cd, C.int(g.PadH), C.int(g.PadW), C.int(g.Stride), math, C.int(max(g.Groups, 1)))
	err := cudnnErrOf(s, "cudnnSetConvolution2dDescriptor/cudnnSetConvolutionGroupCount("+g.String()+")")
	if err == nil {
		var n, c, h, w C.int
		s = C.rn_conv_out_dim(p.cd, p.xd, p.wd, &n, &c, &h, &w)
		err = cudnnErrOf(s, "cudnnGetConvolution2dForwardOutputDim("+g.String()+")")
		if got := [4]int{int(n), int(c), int(h), int(w)}; err == nil && got != [4]int{g.N, g.Cout, g.OH, g.OW} {
			err = fmt.Errorf("cuda: cuDNN computes the output of %s as %v, the operand checks as %v", g, got[:],
				[]int{g.N, g.Cout, g.OH, g.OW})
		}
	}
	if err != nil {
		C.rn_conv_desc_destroy(p.cd)
		C.rn_conv_descs_destroy(p.xd, p.wd, p.yd)
		return nil, err
	}
	return p, nil
}

// destroyConvDescriptors destroys what makeConvPlan created (the plan's algorithms have their own).
func destroyConvDescriptors(p *convPlan) {
	C.rn_conv_desc_destroy(p.cd)
	C.rn_conv_descs_destroy(p.xd, p.wd, p.yd)
}

// cudnnDataType is cuDNN's name of an activation dtype.
func cudnnDataType(dt backend.DType) C.cudnnDataType_t {
	switch dt {
	case backend.BF16:
		return C.CUDNN_DATA_BFLOAT16
	case backend.F16:
		return C.CUDNN_DATA_HALF
	}
	return C.CUDNN_DATA_FLOAT
}

// cudnnFormat is cuDNN's name of an activation layout (for a filter, NHWC means KRSC).
func cudnnFormat(l backend.Layout) C.cudnnTensorFormat_t {
	if l == backend.NHWC {
		return C.CUDNN_TENSOR_NHWC
	}
	return C.CUDNN_TENSOR_NCHW
}

func (dr *driver) destroyConvPlan(p *convPlan) {
	for _, a := range p.algo {
		C.rn_conv_desc_destroy(a.cd)
	}
	destroyConvDescriptors(p)
}

// convCandidates lists cuDNN's algorithms for direction dir of plan p, best first: its heuristics' ranking
// (cudnnGetConvolution*Algorithm_v7), or with timed set the times measured by cudnnFind*AlgorithmEx on
// the operands x, w, y (for backward data x is dx, for backward filter w is dw; the output operand may be
// scratch) with a trial workspace of up to wsLimit bytes. Timing synchronises the compute stream first:
// cuDNN runs the trials on it and must see the operands the queued work writes.
func (dr *driver) convCandidates(p *convPlan, dir convDir, timed bool, x, w, y uint64, wsLimit int64) ([]convCandidate, error) {
	g := p.geom
	var perf [C.RN_MAX_ALGOS]C.rn_perf
	var n C.int
	if !timed {
		s := C.rn_conv_find(C.int(dir), 0, dr.cudnn, p.xd, p.wd, p.cd, p.yd, 0, 0, 0, 0, 0, &perf[0], &n)
		if err := cudnnErrOf(s, "cudnnGetConvolution*Algorithm_v7("+g.String()+", "+dir.String()+")"); err != nil {
			return nil, err
		}
		return candidatesOf(perf[:n]), nil
	}
	if err := cuErr(C.rn_cuStreamSynchronize(dr.compute), "cuStreamSynchronize(compute)"); err != nil {
		return nil, err
	}
	// The trial workspace: as much of wsLimit as the device can give.
	var ws uint64
	wsBytes := wsLimit
	for wsBytes >= 1<<20 {
		var err error
		if ws, err = dr.memAlloc(wsBytes); err == nil {
			break
		}
		wsBytes /= 2
	}
	if ws == 0 {
		wsBytes = 0
	}
	s := C.rn_conv_find(C.int(dir), 1, dr.cudnn, p.xd, p.wd, p.cd, p.yd, C.CUdeviceptr(x), C.CUdeviceptr(w),
		C.CUdeviceptr(y), C.CUdeviceptr(ws), C.size_t(wsBytes), &perf[0], &n)
	if ws != 0 {
		C.rn_cuMemFree(C.CUdeviceptr(ws))
	}
	if err := cudnnErrOf(s, "cudnnFindConvolution*AlgorithmEx("+g.String()+", "+dir.String()+")"); err != nil {
		return nil, err
	}
	cands := candidatesOf(perf[:n])
	for i := range cands {
		// A candidate that needs more than the trial workspace did not run, whatever its status says.
		cands[i].ok = cands[i].ok && cands[i].ws <= wsBytes
	}
	return cands, nil
}

// candidatesOf converts cuDNN's perf results.
func candidatesOf(perf []C.rn_perf) []convCandidate {
	out := make([]convCandidate, len(perf))
	for i, p := range perf {
		out[i] = convCandidate{algo: int(p.algo), ok: p.status == C.CUDNN_STATUS_SUCCESS,
			deterministic: p.determinism == C.CUDNN_DETERMINISTIC, math: int(p.math), ws: int64(p.memory)}
	}
	return out
}

// newConvAlgo makes the convolution descriptor that runs candidate c of direction dir (with the
// candidate's math type) and asks cuDNN for its workspace size.
func (dr *driver) newConvAlgo(p *convPlan, dir convDir, c convCandidate) (*convAlgo, error) {
	g := p.geom
	a := &convAlgo{}
	s := C.rn_conv_desc(&a.cd, C.int(g.PadH), C.int(g.PadW), C.int(g.Stride), C.int(c.math), C.int(max(g.Groups, 1)))
	if err := cudnnErrOf(s, "cudnnSetConvolution2dDescriptor/cudnnSetConvolutionGroupCount("+g.String()+")"); err != nil {
		C.rn_conv_desc_destroy(a.cd)
		return nil, err
	}
	var bytes C.size_t
	s = C.rn_conv_workspace(C.int(dir), dr.cudnn, p.xd, p.wd, a.cd, p.yd, C.int(c.algo), &bytes)
	if err := cudnnErrOf(s, "cudnnGetConvolution*WorkspaceSize("+g.String()+", "+dir.String()+", "+convAlgoName(dir, c.algo)+")"); err != nil {
		C.rn_conv_desc_destroy(a.cd)
		return nil, err
	}
	a.ws = int64(bytes)
	return a, nil
}

// conv runs a queued convolution.
func (dr *driver) conv(c *cmd) error {
	cv := &c.conv
	s := C.rn_conv(C.int(cv.dir), dr.cudnn, cv.plan.xd, cv.plan.wd, cv.algo.cd, cv.plan.yd, C.int(cv.algo.algo),
		C.CUdeviceptr(cv.x), C.CUdeviceptr(cv.w), C.CUdeviceptr(cv.y), C.CUdeviceptr(cv.ws), C.size_t(cv.wsBytes), C.float(cv.beta))
	if s != C.CUDNN_STATUS_SUCCESS {
		return cudnnErrOf(s, fmt.Sprintf("%s(%s)", libCallNames[libConvForward+libCall(cv.dir)], cv.plan.geom))
	}
	return nil
}
