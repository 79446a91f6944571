package cli

import "syscall"

// endWithParent has the kernel send the worker SIGTERM when the launcher dies, even of kill -9 or the
// out-of-memory killer, which leave it no time to stop its workers: they then stop as after Ctrl-C, rank
// 0 writing a checkpoint. The kernel watches the thread that started the worker, which launch keeps.
func endWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGTERM }
