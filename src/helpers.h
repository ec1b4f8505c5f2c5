/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The module's own C helpers (helpers.c), as the Rust side declares them (kthread.rs, and
 * edu/tests.rs for the KUnit-only ones).
 */
#ifndef RUST_WQ_HELPERS_H
#define RUST_WQ_HELPERS_H

#include <linux/types.h>

struct task_struct;

u64 rust_wq_task_cputime_ns(void);
struct task_struct *rust_wq_kthread_run_on_online_cpu(int (*threadfn)(void *data), void *data,
						      unsigned int cpu, const char *namefmt);

void rust_wq_test_kill_self(void);
void rust_wq_test_unkill_self(void);
void rust_wq_test_irq_disable(unsigned int irq);
void rust_wq_test_irq_enable(unsigned int irq);

#endif /* RUST_WQ_HELPERS_H */
