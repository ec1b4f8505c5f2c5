// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers of the module's own test helpers (src/kthread.rs, and src/edu/tests.rs for KUnit
 * cases), for C API that the 7.3 kernel crate does not bind: a declaration bindgen never saw,
 * and static inlines. Their Rust declarations are in those two files; keep them in step. The
 * workqueue layer has its own (src/workqueue/helpers.c) and does not use these.
 */

#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/err.h>
#include <linux/interrupt.h>
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/sched/cputime.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>

#include "helpers.h"

/* The CPU time (user + system, ns) of the calling task, as task_cputime_adjusted() gives it. */
u64 rust_wq_task_cputime_ns(void)
{
	u64 ut, st;

	task_cputime_adjusted(current, &ut, &st);
	return ut + st;
}

/*
 * kthread_create_on_cpu() for a CPU that is online, then a task reference and a wake-up.
 * Under the CPU-hotplug read lock, so that the CPU cannot go down between the check and the
 * binding (kthread_bind() to an offline CPU is not refused: the thread would silently run
 * elsewhere). Returns the task, or ERR_PTR(-ENODEV) if the CPU is offline (threadfn is then
 * never called), or kthread_create_on_cpu()'s error.
 */
struct task_struct *rust_wq_kthread_run_on_online_cpu(int (*threadfn)(void *data), void *data,
						      unsigned int cpu, const char *namefmt)
{
	struct task_struct *p;

	cpus_read_lock();
	if (!cpu_online(cpu)) {
		p = ERR_PTR(-ENODEV);
		goto out;
	}
	p = kthread_create_on_cpu(threadfn, data, cpu, namefmt);
	if (IS_ERR(p))
		goto out;
	get_task_struct(p);
	wake_up_process(p);
out:
	cpus_read_unlock();
	return p;
}

/*
 * For KUnit cases only (src/edu/tests.rs): the calling kernel thread gets a pending SIGKILL,
 * so that its next killable wait ends at once, as a killed user task's would. Kernel threads
 * ignore signals unless allowed; with the handler allow_signal() sets, the signal is only
 * pending (not a group exit), and rust_wq_test_unkill_self() takes it back.
 */
void rust_wq_test_kill_self(void)
{
	allow_signal(SIGKILL);
	send_sig(SIGKILL, current, 1);
}

void rust_wq_test_unkill_self(void)
{
	flush_signals(current);
	disallow_signal(SIGKILL);
}

/* For KUnit cases only: disable_irq() and enable_irq() of a vector the module requested. */
void rust_wq_test_irq_disable(unsigned int irq)
{
	disable_irq(irq);
}

void rust_wq_test_irq_enable(unsigned int irq)
{
	enable_irq(irq);
}
