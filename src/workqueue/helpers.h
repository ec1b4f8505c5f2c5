/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The workqueue layer's C helpers (helpers.c), as the Rust side declares them (helpers.rs).
 */
#ifndef RUST_WQ_WORKQUEUE_HELPERS_H
#define RUST_WQ_WORKQUEUE_HELPERS_H

#include <linux/lockdep_types.h>
#include <linux/spinlock_types_raw.h>

struct timer_list;

int rust_wq_context(void);
void rust_wq_raw_spin_lock_init(raw_spinlock_t *lock, const char *name,
				struct lock_class_key *key);
void rust_wq_raw_spin_lock(raw_spinlock_t *lock);
int rust_wq_raw_spin_trylock(raw_spinlock_t *lock);
void rust_wq_raw_spin_unlock(raw_spinlock_t *lock);
void rust_wq_raw_spin_assert_held(raw_spinlock_t *lock);
unsigned long rust_wq_raw_spin_lock_irqsave(raw_spinlock_t *lock);
void rust_wq_raw_spin_unlock_irqrestore(raw_spinlock_t *lock, unsigned long flags);
unsigned long rust_wq_irq_save(void);
void rust_wq_irq_restore(unsigned long flags);
bool rust_wq_timer_pending(const struct timer_list *timer);
void rust_wq_kvfree_rcu(void *ptr);
raw_spinlock_t *rust_wq_lock_st(unsigned long *st, unsigned long *flags);
void rust_wq_unlock_st(raw_spinlock_t *lock, unsigned long flags);
void rust_wq_cpus_read_lock(void);
void rust_wq_cpus_read_unlock(void);
int rust_wq_remove_cpu(unsigned int cpu);
int rust_wq_add_cpu(unsigned int cpu);

#endif /* RUST_WQ_WORKQUEUE_HELPERS_H */
