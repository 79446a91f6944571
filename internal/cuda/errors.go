package cuda

import "fmt"

// Error is a failed call into the CUDA driver, cuDNN or cuBLAS, e.g.
//
//	cuda: ConvForward: cuMemAlloc(268435456 bytes): CUDA_ERROR_OUT_OF_MEMORY
type Error struct {
	Op     string // the backend.Device method that made the call; empty while opening the device
	Call   string // the library call with the arguments that identify it
	Status int    // the CUresult, cudnnStatus_t or cublasStatus_t value
	Name   string // the status's name from cuGetErrorName, cudnnGetErrorString or cublasGetStatusString
}

func (e *Error) Error() string {
	if e.Op != "" {
		return fmt.Sprintf("cuda: %s: %s: %s", e.Op, e.Call, e.Name)
	}
	return fmt.Sprintf("cuda: %s: %s", e.Call, e.Name)
}

// Is makes errors.Is(err, errOutOfMemory) true for an allocation that failed for lack of memory.
func (e *Error) Is(target error) bool {
	return target == errOutOfMemory && e.Name == "CUDA_ERROR_OUT_OF_MEMORY"
}

// withOp returns a copy of e attributed to the device method op (when it has none yet).
func (e *Error) withOp(op string) *Error {
	if e.Op != "" || op == "" {
		return e
	}
	c := *e
	c.Op = op
	return &c
}
