// Package dist is the foundation of data-parallel training: one process per GPU (or per CPU share), each
// holding a full copy of the model and a slice of every global batch, their gradients summed before each
// optimizer step.
//
// It has three parts:
//
//   - Discover reads the process's rank, local rank and world size, and the address of rank 0, from the
//     variables that torchrun, Slurm's srun or our own launcher set.
//   - Rendezvous connects the ranks over TCP in a star around rank 0, checks that they agree on the world
//     size and on a hash of the training config, and hands every rank an opaque payload from rank 0 (the
//     NCCL unique id when the ranks run on GPUs).
//   - Communicator is the interface the trainer sees: all-reduce, broadcast, all-gather and barrier. The
//     CPU implementation here runs over the rendezvous connections and sums in rank order, so its results
//     are identical on every rank and from run to run; Single is the one-process case, where every
//     collective does nothing. An NCCL implementation, to live with the rest of the CUDA code, will take
//     its unique id from the rendezvous payload.
//
// The trainer calls Discover, then Rendezvous with the config's hash, builds a Communicator, broadcasts
// the initial weights from rank 0, all-reduces the gradients of each step (divided by the world size),
// gathers evaluation results on every rank, and closes the communicator at the end. A peer that exits or
// stops answering makes every collective on the other ranks fail within a bounded time (Options.OpTimeout,
// twice that on a rank waiting for rank 0's answer), with an error naming that rank, so a job never hangs.
package dist
