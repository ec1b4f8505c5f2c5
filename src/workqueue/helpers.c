// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers of the workqueue layer: static inlines and macros of the C API that the 7.3
 * kernel crate does not bind, compiled into the module (Kbuild: rust_wq-y). Declared in
 * helpers.h; the Rust declarations are in helpers.rs beside this file; keep the three in step.
 *
 * Each is the C API itself, so the layer has no architecture-specific code and follows the
 * kernel's configuration (PREEMPT_RT, lock debugging, inlined locks) as C callers do.
 */

#include <linux/cpu.h>
#include <linux/lockdep.h>
#include <linux/preempt.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/timer.h>

#include "helpers.h"

/* The codes of rust_wq_context(); the same values as `Context` in context.rs. */
enum {
	RUST_WQ_CTX_TASK = 0,
	RUST_WQ_CTX_SOFTIRQ = 1,
	RUST_WQ_CTX_HARDIRQ = 2,
	RUST_WQ_CTX_NMI = 3,
};

/*
 * The context the caller runs in, as in_nmi(), in_hardirq() and in_serving_softirq() tell it
 * (on PREEMPT_RT the softirq part comes from current->softirq_disable_cnt, elsewhere from the
 * preempt count). Task context is none of them: in_task().
 */
int rust_wq_context(void)
{
	if (in_nmi())
		return RUST_WQ_CTX_NMI;
	if (in_hardirq())
		return RUST_WQ_CTX_HARDIRQ;
	if (in_serving_softirq())
		return RUST_WQ_CTX_SOFTIRQ;
	return RUST_WQ_CTX_TASK;
}

/*
 * raw_spin_lock_init() with the caller's name and lock class: with CONFIG_DEBUG_SPINLOCK the
 * debug fields and a lockdep class whose wait type is "spin" (allowed in hard-IRQ context),
 * else the architecture's unlocked value.
 */
void rust_wq_raw_spin_lock_init(raw_spinlock_t *lock, const char *name,
				struct lock_class_key *key)
{
#ifdef CONFIG_DEBUG_SPINLOCK
	__raw_spin_lock_init(lock, name, key, LD_WAIT_SPIN);
#else
	*lock = __RAW_SPIN_LOCK_UNLOCKED(lock);
#endif
}

/*
 * raw_spin_lock() and friends: macros that call _raw_spin_lock() or its inlined body,
 * depending on CONFIG_INLINE_SPIN_* (_raw_spin_unlock() is exported only when
 * CONFIG_UNINLINE_SPIN_UNLOCK is set, so Rust cannot call it directly on every kernel).
 * The caller has interrupts off (RawSpinLockIrq keeps them off around the section).
 */
notrace void rust_wq_raw_spin_lock(raw_spinlock_t *lock)
{
	raw_spin_lock(lock);
}

int rust_wq_raw_spin_trylock(raw_spinlock_t *lock)
{
	return raw_spin_trylock(lock);
}

notrace void rust_wq_raw_spin_unlock(raw_spinlock_t *lock)
{
	raw_spin_unlock(lock);
}

/*
 * raw_spin_lock_irqsave()/raw_spin_unlock_irqrestore(): the flags travel through the caller,
 * which restores them in the reverse order of saving (the layer's sections are closures).
 */
notrace unsigned long rust_wq_raw_spin_lock_irqsave(raw_spinlock_t *lock)
{
	unsigned long flags;

	raw_spin_lock_irqsave(lock, flags);
	return flags;
}

notrace void rust_wq_raw_spin_unlock_irqrestore(raw_spinlock_t *lock, unsigned long flags)
{
	raw_spin_unlock_irqrestore(lock, flags);
}

/*
 * The lock of the armed list that an item's word `st` names (armed.rs): with interrupts saved
 * in *flags, reads *st, locks the raw spinlock at that address (an armed list starts with its
 * lock; bit 0, CLOSING, marks a move in progress, whose mover holds that lock), and re-reads
 * *st under it until the two agree. Returns the lock, held, or NULL (with interrupts restored)
 * when *st is 0. Interrupts stay off from before the first read, an RCU read-side section, and
 * a list is freed only after a grace period once no item names it: the lock is memory until it
 * is taken and the re-read tells whether it is still the item's list.
 * Released with rust_wq_unlock_st().
 */
notrace raw_spinlock_t *rust_wq_lock_st(unsigned long *st, unsigned long *flags)
{
	unsigned long f;

	local_irq_save(f);
	for (;;) {
		raw_spinlock_t *l = (raw_spinlock_t *)(smp_load_acquire(st) & ~1UL);

		if (!l) {
			local_irq_restore(f);
			return NULL;
		}
		raw_spin_lock(l);
		if (READ_ONCE(*st) == (unsigned long)l) {
			*flags = f;
			return l;
		}
		raw_spin_unlock(l);
	}
}

notrace void rust_wq_unlock_st(raw_spinlock_t *lock, unsigned long flags)
{
	raw_spin_unlock_irqrestore(lock, flags);
}

/* local_irq_save()/local_irq_restore(), for the layer's short interrupts-off sections. */
notrace unsigned long rust_wq_irq_save(void)
{
	unsigned long flags;

	local_irq_save(flags);
	return flags;
}

notrace void rust_wq_irq_restore(unsigned long flags)
{
	local_irq_restore(flags);
}

/*
 * timer_pending(): whether the timer is armed (a lockless snapshot; the caller serialises with
 * whoever arms or deletes it when the answer must stay true).
 */
bool rust_wq_timer_pending(const struct timer_list *timer)
{
	return timer_pending(timer);
}

/*
 * kvfree_rcu_mightsleep(): frees a kmalloc'd object after an RCU grace period (it may wait for
 * one itself when it cannot allocate). The caller may sleep.
 */
void rust_wq_kvfree_rcu(void *ptr)
{
	kvfree_rcu_mightsleep(ptr);
}

/* lockdep_assert_held(): a WARN when lockdep is on and the lock is not held; else nothing. */
void rust_wq_raw_spin_assert_held(raw_spinlock_t *lock)
{
	lockdep_assert_held(lock);
}

/*
 * cpus_read_lock()/cpus_read_unlock(): functions with CONFIG_HOTPLUG_CPU, empty static inlines
 * without it (no CPU ever goes offline then).
 */
void rust_wq_cpus_read_lock(void)
{
	cpus_read_lock();
}

void rust_wq_cpus_read_unlock(void)
{
	cpus_read_unlock();
}

/*
 * remove_cpu()/add_cpu() for the tests that take a CPU down: remove_cpu() exists only with
 * CONFIG_HOTPLUG_CPU; without it no CPU can go offline, which the caller is told (-EOPNOTSUPP).
 */
int rust_wq_remove_cpu(unsigned int cpu)
{
#ifdef CONFIG_HOTPLUG_CPU
	return remove_cpu(cpu);
#else
	return -EOPNOTSUPP;
#endif
}

int rust_wq_add_cpu(unsigned int cpu)
{
#ifdef CONFIG_HOTPLUG_CPU
	return add_cpu(cpu);
#else
	return -EOPNOTSUPP;
#endif
}
