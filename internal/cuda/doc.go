// Package cuda is the GPU implementation of backend.Device: float32 tensors in device memory, with 4-D
// activations in bf16, f16 and/or NHWC when the options ask (docs/decisions/0006-activation-formats.md),
// convolutions on cuDNN, GEMMs on cuBLAS, and everything else (batch norm with its fused residual add and
// ReLU, pooling, softmax cross-entropy, bias, SGD) on the kernels of kernels/*.cu.
//
// Building. The package has two builds. Without the cuda tag it only registers a "cuda" backend whose
// factory says the binary was built without CUDA, so `go build ./...` and `go test ./...` work anywhere.
// With -tags cuda it needs cgo, the CUDA 13 / cuDNN 9 / cuBLAS headers (CGO_CFLAGS, set up by
// scripts/cuda-env.sh) and internal/cuda/kernels.fatbin, which it embeds: `make kernels` compiles
// kernels/all.cu (the single translation unit that includes every kernel family) into that file, and
// `make cuda` always runs it first. The fatbin is generated and git-ignored; building with -tags cuda
// before `make kernels` fails on the missing embed file. Nothing links against CUDA: libcuda.so.1,
// libcudnn.so.9 and libcublas.so.13 (or .12) are opened with dlopen when a device is opened, so a binary
// built with the tag still runs --device cpu on a machine without a GPU or driver, and opening the cuda
// device there says what is missing. libnccl.so.2 is opened later still, by the first collective.
//
// Environment. RESNET_CUDA_DEVICE picks the GPU (default 0); backend.Options.Ordinal, a data-parallel
// worker's local rank, counts from it. RESNET_CUDA_TF32=1 lets cuDNN and cuBLAS use TF32 tensor cores for
// fp32 (off by default: results then track the CPU reference closely). RESNET_CUDA_WORKSPACE_MB caps one
// convolution's cuDNN workspace (default 1024, and at most an eighth of the free memory).
//
// Collectives. The device is a backend.CollectiveDevice on NCCL (nccl.go): libnccl.so.2 is opened at the
// first NewCollectiveID or JoinCollectives, never before, so only data-parallel training needs it; the
// headers come with the toolchain (NVIDIA's nvidia-nccl-cu13 wheel). All-reduce and broadcast run in
// place on the compute stream, ordered with the rest of the device's work. The kernel emulator has
// groups of one rank, among which both change nothing.
//
// Determinism. Convolution algorithms are chosen once per shape (algo.go): by cuDNN's heuristics among the
// deterministic ones by default, so a run gives the same bits as the last one on the same GPU, driver,
// libraries, settings and workspace cap; backend.Options.Benchmark times the candidates instead, and
// Options.Nondeterministic allows any. The kernels are built without fast math and reduce in a fixed
// order, and cuBLAS runs on one stream with a fixed workspace, which makes it deterministic too. The
// device reports all of it (backend.Reporter, report.go).
//
// Kernels. LaunchCounts reports launches under these names (and cuDNN/cuBLAS calls under
// cudnnConvolutionForward, cudnnConvolutionBackwardData, cudnnConvolutionBackwardFilter, cublasSgemm):
//
//	batchnorm.cu, fused      bn_forward_stats, bn_forward_apply, bn_forward_apply_relu, bn_forward_apply_add,
//	                         bn_forward_apply_add_relu, bn_inference_apply, bn_inference_apply_relu,
//	                         bn_inference_apply_add, bn_inference_apply_add_relu, bn_backward_reduce,
//	                         bn_backward_reduce_relu, bn_backward_dx, bn_backward_dx_relu, bn_backward_dx_add,
//	                         bn_backward_dx_add_relu
//	batchnorm.cu, unfused    bn_stats_partial, bn_stats_finalize, bn_inference_params, bn_normalize,
//	                         residual_add, relu_forward, relu_backward, residual_backward,
//	                         bn_backward_reduce_partial, bn_backward_finalize, bn_backward_input
//	batchnorm.cu, synchronised  bn_sync_stats, bn_sync_finalize, bn_sync_grad_reduce, bn_sync_grad_finalize
//	                         (both paths: backend.BatchNormParams.Sync)
//	pooling.cu               maxpool_forward, maxpool_backward, avgpool_forward, avgpool_backward (global),
//	                         avgpool_window_forward, avgpool_window_backward (windowed, count_include_pad
//	                         either way)
//	concat.cu                copy_channels (channel concatenation and its backward, written or added)
//	scaled_residual.cu       scaled_residual_forward, scaled_residual_backward (Inception-ResNet's scaled
//	                         residual sum with its bias and ReLU, fused), scaled_bias (unfused);
//	                         scaled_residual_bias_grad (both)
//	loss.cu                  softmax_cross_entropy, soft_target_cross_entropy
//	linear.cu                linear_bias_add, linear_bias_grad
//	sgd.cu                   sgd_step (fused, all parameters in one launch), sgd_step_single (unfused)
//	convert.cu               filter_to_<f32|bf16|f16>_<nchw|nhwc> and filter_from_..., a convolution weight
//	                         to and from the format of a device's activations (filters.go); not f32_nchw,
//	                         which convolves the parameter table's weights as they are
//	gate.cu                  gate_forward, gate_backward, gate_backward_data (fused SE gate with residual
//	                         add and ReLU), gate_scale, gate_grad_reduce, gate_pool_add (unfused);
//	                         excite_bias_relu, excite_relu_bias_grad (the SE excitation, f32)
//
// Those are the kernels of f32 NCHW activations. Every kernel that reads or writes activations is also
// built for the other formats of backend.Options.Precision and Layout, its name suffixed by the dtype and
// then the layout (bn_forward_apply_relu_bf16, bn_forward_apply_relu_nhwc,
// bn_forward_apply_relu_f16_nhwc); relu_forward and relu_backward are element-wise and come per dtype
// only; bn_inference_params, bn_backward_finalize, bn_sync_finalize, bn_sync_grad_finalize and the other
// families take f32 only.
//
// A device opened with backend.Options.Unfused never launches a kernel of FusedKernels, and one opened
// without it never launches one of UnfusedKernels.
//
// Execution model. One goroutine locked to its OS thread owns the context (the primary context of the
// device), a compute stream, a copy stream and the cuDNN and cuBLAS handles. Methods validate on the
// caller's goroutine and queue commands; launches return once queued, and an error the GPU side hits is
// returned by the next method call. Upload goes through pinned staging on the copy stream (events order
// it against the compute stream), or straight from memory of PinnedFloat32s; Download and Sync wait.
// Device memory comes from a caching allocator, so a training step after the first never calls
// cuMemAlloc (MemStats counts the calls; PeakBytes is the peak held by tensors and scratch).
//
// Testing without a GPU. With -tags 'cuda kernelemu' (and g++ with C++20) the package builds a CPU
// emulator of the GPU side (emulator.go, emulator.cpp): the real kernel sources run as C++ with every
// block's 256 threads as fibers, naive loops stand in for cuDNN and cuBLAS, and Open returns an emulated
// device, so the launchers, queue, allocator and kernels are tested end to end:
//
//	go test -tags 'cuda kernelemu' ./internal/cuda/
package cuda
