/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * rust_wq userspace ABI: the ioctls of /dev/rust_wq.
 *
 * All structures have a fixed size and layout on every 64-bit and 32-bit ABI
 * (only __u32/__u64 fields, naturally aligned, explicit padding).  Every
 * structure passed *into* the kernel starts with a `version` field that must
 * be RUST_WQ_ABI_VERSION, and every `reserved`/`pad` field must be zero on
 * input (else EINVAL); the kernel zeroes them on output.  Fields marked "out"
 * are ignored on input.
 *
 * Work belongs to the open file that enqueued it.  Closing the file cancels
 * whatever of it has not started, without waiting, and then waits only for the
 * items that were already running (each sleeps at most max_sleep_us).  The
 * module cannot be unloaded while a file is open.  The device is root-only
 * (0600).
 *
 * What one file's calls wait for.  Each file has one lock.  ENQUEUE (with
 * FROM_IRQ/FROM_SOFTIRQ: until every item is queued), MOD_DELAY, RESULTS and
 * RESET hold it for the whole call (RESET also while it waits for the items
 * already running); FLUSH holds it only while it picks its items and fires
 * their timers, CANCEL only while it takes its items off their queues: the
 * waits that follow (FLUSH for its items, CANCEL for the running ones) hold
 * nothing, so other calls of the same file proceed meanwhile, and see the
 * waiting call's items as pending until they finish.  So of two such calls
 * on one file, one's locked part runs wholly before or after the other's;
 * nothing orders the rest.  STATS and INFO take no lock.  BENCH takes the
 * device-wide benchmark lock only.  Calls on different files share no lock
 * but that one (their items share the queues: on the ordered queue one
 * file's item can wait behind another's).
 *
 * Waits.  Every call that can wait long ends when the caller is killed
 * (SIGKILL, or any signal whose action is to terminate): waiting for the
 * file's lock (see above), for the benchmark lock, FLUSH's wait for
 * its items, and a running BENCH.  All but a running BENCH also end on any
 * other signal: the call is restarted if the handler has SA_RESTART, and
 * fails with EINTR otherwise (nothing was done, except that FLUSH may already
 * have fired delayed items early).  CANCEL, RESET and close wait only for
 * items already running.
 *
 * Memory.  What one open file can make the kernel hold is bounded:
 * max_pending items (a few hundred bytes each), max_results results (64 bytes
 * each; the oldest is dropped when an item finishes and max_results are
 * waiting, see RESULTS), and lists of max_pending pointers.  A BENCH holds
 * 32 bytes per round of all its threads, at most RUST_WQ_BENCH_MAX_TOTAL
 * rounds (64 MiB).
 *
 * poll(2), select(2), epoll(7): a file is readable (POLLIN | POLLRDNORM)
 * while it has unread results, i.e. while RUST_WQ_IOC_RESULTS would return at
 * least one; reading the last one, or RESET, makes it not readable.  Every
 * stored result wakes all waiters of the file (and is a new edge for
 * EPOLLET).  No other event is ever reported (no POLLOUT, POLLPRI,
 * POLLHUP or POLLERR); the ioctls do not block on results.  This needs no new
 * ABI version: a module of version 1 without poll support reports the
 * kernel's default for files without a poll method, POLLIN | POLLRDNORM |
 * POLLOUT | POLLWRNORM at once, and POLLOUT in the answer tells it apart.
 * A file being waited on by poll() or select() stays open until that call
 * returns, even if another thread closes the descriptor meanwhile: its work
 * is not cancelled, a result still ends the wait, and the call then reports
 * POLLNVAL for the closed descriptor.  epoll holds no reference: closing the
 * last descriptor releases the file (cancelling its work) and removes it
 * from every epoll set.
 *
 * Errors (return -1 with errno set):
 *   ENOTTY  unknown ioctl number (another magic, or an unknown command nr)
 *   EINVAL  a known command nr with another size or direction than below,
 *           wrong version, non-zero reserved/pad field, unknown ENQUEUE flag
 *           bit or more than one RUST_WQ_ENQ_F_FROM_* flag, unknown queue,
 *           count 0 or > max_count, delay > max_delay_us,
 *           sleep > max_sleep_us, cpu >= nr_cpu_ids (and not RUST_WQ_CPU_ANY),
 *           unknown target kind, a non-zero `queue` or `id` that the target
 *           kind does not use, RESULTS with buf 0 and capacity > 0
 *   ENODEV  the requested CPU is possible but offline; ENQUEUE with
 *           RUST_WQ_ENQ_F_FROM_DEVICE_IRQ when no edu device is bound (or
 *           it was unbound before its interrupt queued the items)
 *   EFAULT  the argument pointer (or results buffer) cannot be read/written.
 *           ENQUEUE, FLUSH, CANCEL and RESULTS check that their argument can
 *           be written back before they act; RESULTS consumes nothing on
 *           EFAULT.
 *   EINTR   a wait ended by a signal (see "Waits" above); nothing was done.
 *   EBUSY   the file's unfinished items plus `count` would exceed max_pending
 *           (nothing is enqueued; the arguments are checked first, so an
 *           invalid call fails with EINVAL even then)
 *   ENOENT  CANCEL (by id) or MOD_DELAY of an id that is not pending: it never
 *           existed, was cancelled, or has started (CANCEL then returns after
 *           the item has finished; MOD_DELAY does not wait for it)
 *   ENOMEM  ENQUEUE: the kernel could not allocate the items; none of the
 *           call's items runs (any already armed are cancelled, or stopped
 *           before their work function does anything, before returning).
 *           FLUSH: no memory for the list of targeted items; nothing was
 *           flushed.  MOD_DELAY: see there.
 */
#ifndef _UAPI_RUST_WQ_H
#define _UAPI_RUST_WQ_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define RUST_WQ_ABI_VERSION 1
#define RUST_WQ_DEVICE "/dev/rust_wq"
#define RUST_WQ_IOC_MAGIC 0xBC

/* Limits of this version (also reported by RUST_WQ_IOC_INFO). */
#define RUST_WQ_MAX_COUNT 1024
#define RUST_WQ_MAX_PENDING 4096
#define RUST_WQ_MAX_DELAY_US 60000000ull /* 60 s */
#define RUST_WQ_MAX_SLEEP_US 1000000ull  /* 1 s */
#define RUST_WQ_MAX_RESULTS 8192

/* Target queues. */
#define RUST_WQ_Q_PERCPU 0        /* the module's own per-CPU queue (WQ_PERCPU) */
#define RUST_WQ_Q_UNBOUND 1       /* the module's own unbound queue (WQ_UNBOUND) */
#define RUST_WQ_Q_ORDERED 2       /* the module's ordered queue: one item at a time, FIFO */
#define RUST_WQ_Q_SYSTEM_PERCPU 3 /* system_percpu_wq, what schedule_work() uses */
#define RUST_WQ_Q_SYSTEM_DFL 4    /* system_dfl_wq, the default unbound system queue */
#define RUST_WQ_Q_COUNT 5

/* `cpu` value meaning "no CPU requested" (the queue picks one). */
#define RUST_WQ_CPU_ANY 0xffffffffu

/*
 * RUST_WQ_IOC_INFO: version, limits, and the edu device.
 *
 * The module is also the PCI driver "rust_wq_edu" of QEMU's edu device
 * (-device edu: vendor 0x1234, device 0x11e8); it drives one such device
 * (a second one is refused at probe with EBUSY).  When one is bound,
 * device_flags has RUST_WQ_INFO_DEVICE_BOUND and device_irq is the IRQ
 * number of its interrupt (the line "rust_wq_edu" of /proc/interrupts);
 * RUST_WQ_INFO_DEVICE_MSI says it is an MSI vector (else the INTx line).
 * The three counters are module-wide, since the module was loaded:
 * device_irqs counts the interrupts the handler took as the device's own;
 * each of them queued the driver's static work item (DECLARE_WORK style) on
 * system_percpu_wq unless it was still pending (schedule_work() semantics):
 * device_bh_queued counts the times it was queued, device_bh_runs the times
 * it ran.  These fields were reserved0 and reserved[0..3] (always zero) in
 * the first release of ABI version 1; a module of that release reports no
 * device.
 */
#define RUST_WQ_INFO_DEVICE_BOUND (1ull << 0) /* an edu device is bound */
#define RUST_WQ_INFO_DEVICE_MSI (1ull << 1)   /* its interrupt is an MSI vector */

struct rust_wq_info {
	__u32 abi_version;   /* RUST_WQ_ABI_VERSION */
	__u32 nr_cpu_ids;    /* CPUs are numbered 0 .. nr_cpu_ids-1 */
	__u32 max_count;     /* most items one ENQUEUE may create */
	__u32 max_pending;   /* most unfinished items one file may have */
	__u64 max_delay_us;  /* largest accepted delay */
	__u64 max_sleep_us;  /* largest accepted sleep inside a work item */
	__u64 online_cpus;   /* bit n set: CPU n online (CPUs 0..63 only; see sysfs beyond) */
	__u32 max_results;   /* results kept per file before the oldest are dropped */
	__u32 device_irq;    /* IRQ number of the bound edu device; 0 if none */
	__u64 device_flags;  /* RUST_WQ_INFO_DEVICE_* */
	__u64 device_irqs;   /* interrupts the edu handler took as its own */
	__u64 device_bh_queued; /* times the handler queued the static item */
	__u64 device_bh_runs;   /* times the static item ran */
};

/*
 * RUST_WQ_IOC_ENQUEUE: create `count` work items and queue them.
 *
 * cpu: RUST_WQ_CPU_ANY, or a CPU to queue on (queue_work_on /
 *      queue_delayed_work_on).  Allowed on every queue; on the per-CPU queues
 *      the item runs on that CPU.
 * delay_us: 0 queues at once; otherwise the item is queued after at least
 *      this delay (rounded up to whole jiffies, never early).
 * sleep_us: the work function sleeps (fsleep: usleep_range/msleep) at least
 *      this long by the clock of the results (it sleeps again for what is
 *      left if the sleep ended early); 1..10 sleep 11 us (the kernel
 *      busy-waits below that).
 * flags: RUST_WQ_ENQ_F_*; any other bit, or more than one FROM_ flag, is
 *      EINVAL.
 * On success `first_id` is the id of the first item; the items have ids
 * first_id .. first_id + count - 1.  Ids are unique per file and start at 1.
 *
 * RUST_WQ_ENQ_F_FROM_IRQ: the items are queued (or, with a delay, armed)
 *      from a hard-interrupt handler instead of the calling task: the ioctl
 *      makes the items as usual, raises an irq_work (IRQ_WORK_HARD_IRQ) on
 *      the calling CPU whose handler does the queueing, at most
 *      RUST_WQ_IRQ_BATCH items per interrupt, and sleeps until the handler
 *      has finished.  It returns when every item is queued, or with the
 *      error of the first item that could not be (then, as without the flag,
 *      none of the call's items runs).  Every queue, cpu, delay and count
 *      is accepted with it; ids, counts, FLUSH, CANCEL, MOD_DELAY and close
 *      behave exactly as without it.  The results say RUST_WQ_RES_FROM_HARDIRQ.
 * RUST_WQ_ENQ_F_FROM_SOFTIRQ: the same from softirq context: the handler is
 *      a work item on system_bh_wq (a bottom-half queue, run in softirq on
 *      the calling CPU).  The results say RUST_WQ_RES_FROM_SOFTIRQ.
 * RUST_WQ_ENQ_F_FROM_DEVICE_IRQ: the same from the interrupt handler of the
 *      edu PCI device (see RUST_WQ_IOC_INFO): the ioctl makes the items,
 *      then, for each RUST_WQ_IRQ_BATCH of them, has the device raise its
 *      interrupt (a write to its BAR0 register 0x60) and sleeps until the
 *      handler has read and acknowledged the device's status, queued the
 *      driver's static work item (unless still pending) and queued (or
 *      armed) the batch.  One such call raises ceil(count / 64) interrupts
 *      and runs at a time (module-wide); the handler runs on whichever CPU
 *      the interrupt is delivered to, and a `cpu` is honoured exactly as
 *      without the flag.  The results say RUST_WQ_RES_FROM_HARDIRQ and
 *      RUST_WQ_RES_FROM_DEVICE_IRQ, and each item's dmesg line says
 *      "queued_from=device_irq irq=N".  ENODEV if no edu device is bound
 *      (nothing is made), or if it is unbound before the handler queued
 *      every batch (then, as for any failed ENQUEUE, none of the call's
 *      items runs); EINTR if the caller is killed before that.
 *      Every queue, cpu, delay and count is accepted with it.
 * More than one FROM_ flag: EINVAL (the items are queued from one context).
 *
 * Versioning: `flags` was the first word of `reserved[2]` in the first
 * release of ABI version 1, which required it to be zero; the flags are
 * additive extensions of version 1.  A module without a flag fails it with
 * EINVAL, so callers can probe for it (RUST_WQ_ENQ_F_FROM_DEVICE_IRQ came
 * last: a module that knows it reports the edu device in INFO).
 */
#define RUST_WQ_ENQ_F_FROM_IRQ (1ull << 0)     /* queue from a hard-IRQ handler */
#define RUST_WQ_ENQ_F_FROM_SOFTIRQ (1ull << 1) /* queue from softirq context */
#define RUST_WQ_ENQ_F_FROM_DEVICE_IRQ (1ull << 2) /* queue from the edu device's IRQ handler */
#define RUST_WQ_ENQ_F_ALL \
	(RUST_WQ_ENQ_F_FROM_IRQ | RUST_WQ_ENQ_F_FROM_SOFTIRQ | RUST_WQ_ENQ_F_FROM_DEVICE_IRQ)
#define RUST_WQ_IRQ_BATCH 64 /* most items queued per interrupt (or softirq run) */

struct rust_wq_enqueue {
	__u32 version;
	__u32 queue;      /* RUST_WQ_Q_* */
	__u32 cpu;        /* RUST_WQ_CPU_ANY or a CPU number */
	__u32 count;      /* 1 .. max_count */
	__u64 delay_us;   /* 0 .. max_delay_us */
	__u64 sleep_us;   /* 0 .. max_sleep_us */
	__u64 tag;        /* copied into each result */
	__u64 first_id;   /* out */
	__u64 flags;      /* RUST_WQ_ENQ_F_* (was reserved[0]) */
	__u64 reserved[1];
};

/* Kinds for FLUSH and CANCEL. */
#define RUST_WQ_TARGET_ALL 0   /* all of this file's items */
#define RUST_WQ_TARGET_ID 1    /* the item with `id` */
#define RUST_WQ_TARGET_QUEUE 2 /* all of this file's items on `queue` */

/*
 * RUST_WQ_IOC_FLUSH: wait until the targeted items that were enqueued before
 * the call have finished (delayed ones included: their timers are fired
 * early, as flush_delayed_work() does).  `count` (out) is how many items were
 * waited for.  FLUSH of an id that is not pending succeeds with count 0.
 * The wait ends on a signal (EINTR or restart, see "Waits"); a restarted
 * FLUSH counts only the items still unfinished.
 *
 * RUST_WQ_IOC_CANCEL: in two phases: first take every targeted item that has
 * not started off its queue without waiting (cancel_delayed_work()), then
 * wait for the targeted items that were running.  `count` (out) is how many
 * were cancelled, which then never run and produce no result.
 * CANCEL of an id that is not pending, or that started before it could be
 * cancelled, fails with ENOENT.  Every item ends exactly one way: it runs once
 * (and produces one result) or it is cancelled (and counted once).
 */
struct rust_wq_target {
	__u32 version;
	__u32 kind;       /* RUST_WQ_TARGET_* */
	__u32 queue;      /* for RUST_WQ_TARGET_QUEUE, else 0 */
	__u32 pad;
	__u64 id;         /* for RUST_WQ_TARGET_ID, else 0 */
	__u64 count;      /* out */
	__u64 reserved[2];
};

/*
 * RUST_WQ_IOC_MOD_DELAY: change the delay of a pending item (it now runs
 * `delay_us` from now; mod_delayed_work_on()).  ENOENT if the item is not
 * pending (it ran, is running, was cancelled, or never existed; a running
 * item is not waited for).  The item is taken off its queue and queued again
 * by the calling task (so its result says RUST_WQ_RES_FROM_TASK, even after
 * RUST_WQ_ENQ_F_FROM_IRQ); if that fails (its CPU went offline: ENODEV; no
 * memory: ENOMEM) it stays cancelled and is counted as cancelled.
 */
struct rust_wq_mod_delay {
	__u32 version;
	__u32 pad;
	__u64 id;
	__u64 delay_us;   /* 0 .. max_delay_us */
	__u64 reserved[2];
};

/*
 * rust_wq_result.flags.  Of the three context bits RUST_WQ_RES_FROM_TASK,
 * _SOFTIRQ and _HARDIRQ exactly one is set: the context of the call that
 * queued the item (for a delayed item, that armed its timer), as in_task() /
 * in_serving_softirq() / in_hardirq() said at that moment.  (A module older
 * than these bits sets none of them.)  RUST_WQ_RES_FROM_DEVICE_IRQ is set
 * in addition to _HARDIRQ when that hard-IRQ handler was the edu device's
 * (RUST_WQ_ENQ_F_FROM_DEVICE_IRQ).
 */
#define RUST_WQ_RES_PROCESS_CTX (1u << 0) /* ran in process context (in_task, preemptible) */
#define RUST_WQ_RES_SLEPT (1u << 1)       /* slept (blocked in the scheduler: a busy-wait
					     does not count) for at least sleep_us, by
					     the clock of runtime_ns */
#define RUST_WQ_RES_FROM_TASK (1u << 2)    /* queued from task context (the ioctl) */
#define RUST_WQ_RES_FROM_SOFTIRQ (1u << 3) /* queued from softirq context (RUST_WQ_ENQ_F_FROM_SOFTIRQ) */
#define RUST_WQ_RES_FROM_HARDIRQ (1u << 4) /* queued from a hard-IRQ handler (RUST_WQ_ENQ_F_FROM_IRQ) */
#define RUST_WQ_RES_FROM_DEVICE_IRQ (1u << 5) /* ... the edu device's (RUST_WQ_ENQ_F_FROM_DEVICE_IRQ) */

/* One executed item. */
struct rust_wq_result {
	__u64 id;
	__u64 tag;
	__u64 seq;            /* global execution order (module-wide, from 1) */
	__u64 latency_ns;     /* from the ENQUEUE call (any delay included) to the start of the work function */
	__u64 runtime_ns;     /* duration of the work function */
	__u32 requested_cpu;  /* as given, or RUST_WQ_CPU_ANY */
	__u32 cpu;            /* CPU the work function started on */
	__u32 queue;          /* RUST_WQ_Q_* */
	__u32 flags;          /* RUST_WQ_RES_* */
	__u64 reserved;
};

/*
 * RUST_WQ_IOC_RESULTS: move up to `capacity` results of this file, oldest
 * first, into the array at `buf`; `count` (out) says how many.  Results that
 * are read are removed.  A file keeps at most max_results unread results at
 * any moment: when an item finishes with max_results waiting, the oldest is
 * dropped.  `dropped` (out) is how many results were dropped since the last
 * RESULTS call (STATS results_dropped counts them since open or RESET).
 * Results produced while the call runs may or may not be returned.
 */
struct rust_wq_results {
	__u32 version;
	__u32 capacity;
	__u64 buf;        /* user pointer to struct rust_wq_result[capacity] */
	__u32 count;      /* out */
	__u32 pad;
	__u64 dropped;    /* out */
	__u64 reserved[2];
};

/*
 * RUST_WQ_IOC_STATS: this file's counters since open (or the last RESET);
 * RESULTS does not reset results_dropped.
 */
struct rust_wq_stats {
	__u64 enqueued;
	__u64 executed;
	__u64 cancelled;
	__u64 pending;    /* enqueued - executed - cancelled */
	__u64 results_dropped;
	__u64 reserved[3];
};

/*
 * RUST_WQ_IOC_BENCH: run one workqueue benchmark in the kernel and block until
 * it is done, by the method of lib/test_workqueue.c (kthreads bound to CPUs,
 * ktime_get() right before and right after the timed call, percentiles of the
 * sorted samples indexed as sorted[n * p / 100]).
 *
 * `op` says what is timed.  RUST_WQ_BENCH_OP_RT runs one kthread per online
 * CPU from CPU 0 on (at most `threads` if non-zero), each doing `items`
 * rounds of "queue one work item, wait until it has run"; the whole run, from
 * releasing the threads to having stopped them, gives elapsed_ns and
 * items_per_sec (threads that are done sleep until the last one is, they do
 * not spin; under QEMU's -icount, elapsed_ns / (threads_run * items) is the
 * guest instructions per completed item).  RUST_WQ_BENCH_OP_QUEUE_FRESH runs
 * the same way with a new item every round.  With
 * RUST_WQ_BENCH_F_START_LATENCY (RT only) the time from queueing to the start
 * of the work function is measured too (start_p*).  RUST_WQ_BENCH_OP_DELAYED_PAR
 * also runs on `threads` kthreads (0: one per online CPU) at once.
 * RUST_WQ_BENCH_OP_DROP_ARMED runs RUST_WQ_BENCH_DROP_ROUNDS rounds on one
 * kthread, and its `items` is the number of armed items of each round (see the
 * op list).  Every other op runs `items` rounds on one kthread bound to the
 * first online CPU: untimed set-up, the timed call, untimed tear-down;
 * `threads` must then be 0 or 1.  queue_p* are the percentiles of the timed
 * call for every op (for DROP_ARMED: of each round's time divided by
 * `items`).  The C twin bench/rust_wq_ctwin.c makes the same kernel calls,
 * with queues of the same flags.
 *
 * `flags` may also select whose code makes the timed call and through which
 * pointer, for QUEUE, QUEUE_FRESH and DELAYED only (EINVAL with any other op):
 * RUST_WQ_BENCH_F_UPSTREAM times upstream's kernel::workqueue (Linux 7.3:
 * Queue::enqueue, Queue::enqueue_delayed) on the same queue, borrowed with
 * Queue::from_raw, instead of this module's layer; RUST_WQ_BENCH_F_KBOX queues
 * items through Pin<KBox<_>> instead of Arc (the work function hands the box
 * back, so the same item is reused).  The two combine.
 *
 * `path` says on which queue: RUST_WQ_BENCH_PERCPU is a WQ_PERCPU queue made
 * for the run ("rust_wq_bench_pcpu"); delayed ops on the two owned queues use
 * the owned queue's tracked delayed calls.
 *
 * One benchmark runs at a time (others wait, interruptibly).  EINVAL for an
 * unknown path, op or flag, items 0 or > RUST_WQ_BENCH_MAX_ITEMS, a non-zero
 * pad or reserved field, threads > 1 with an op other than RT, QUEUE_FRESH
 * and DELAYED_PAR, START_LATENCY with an op other than RT, UPSTREAM or KBOX
 * with an op other than QUEUE, QUEUE_FRESH and DELAYED, DROP_ARMED on another
 * path than RUST_WQ_BENCH_PERCPU or with items > RUST_WQ_BENCH_DROP_MAX_ITEMS,
 * or when the threads that would run times their rounds exceed
 * RUST_WQ_BENCH_MAX_TOTAL (nothing is allocated then).  A killed caller stops the run after each thread's
 * current round.  A CPU of the run that goes offline during a QUEUE_ON run
 * ends it with ENODEV (the layer refuses to queue on an offline CPU).
 */
#define RUST_WQ_BENCH_UNBOUND_SYSFS 0  /* queue "rust_wq_bench": WQ_UNBOUND | WQ_SYSFS, as C's
					* bench_wq; set its scope in
					* /sys/bus/workqueue/devices/rust_wq_bench/affinity_scope */
#define RUST_WQ_BENCH_PERCPU 1         /* a WQ_PERCPU queue made for the run */
#define RUST_WQ_BENCH_SYSTEM_PERCPU 2  /* system_percpu_wq (schedule_work()) */
#define RUST_WQ_BENCH_F_START_LATENCY (1u << 0)
#define RUST_WQ_BENCH_F_UPSTREAM (1u << 1) /* upstream's kernel::workqueue, not the layer */
#define RUST_WQ_BENCH_F_KBOX (1u << 2)     /* Pin<KBox<_>> items, not Arc */
#define RUST_WQ_BENCH_MAX_ITEMS 1000000
#define RUST_WQ_BENCH_DROP_ROUNDS 5          /* rounds of a DROP_ARMED run */
#define RUST_WQ_BENCH_DROP_MAX_ITEMS 200000  /* armed items of one DROP_ARMED round */
#define RUST_WQ_BENCH_MAX_TOTAL (1ull << 21) /* threads run x items */

/*
 * Operations (`op`); in parentheses the name `wqctl bench --op` takes.
 *   RT (rt): queue one item and wait for it, on one thread per online CPU (at
 *     most `threads`); the queueing call is timed.
 *   QUEUE (queue): enqueue the same item every round, then wait for it.
 *   QUEUE_FRESH (queue-fresh): as RT with a freshly allocated and
 *     initialised item every round (lib/test_workqueue.c re-initialises its
 *     item with INIT_WORK before every round).
 *   QUEUE_ON (queue-on): enqueue on the thread's own CPU (queue_work_on), then
 *     wait.
 *   DELAYED (delayed): arm a delayed item (10 s), then cancel it untimed.
 *   MOD_DELAYED (mod-delayed): arm untimed, change the delay
 *     (mod_delayed_work), cancel untimed.
 *   CANCEL_IDLE (cancel-idle): cancel an idle delayed item
 *     (cancel_delayed_work).
 *   CANCEL_ARMED (cancel-armed): arm untimed, then cancel
 *     (cancel_delayed_work).
 *   CANCEL_SYNC_IDLE (cancel-sync-idle): cancel_delayed_work_sync of an idle
 *     item.
 *   CANCEL_SYNC_ARMED (cancel-sync-armed): arm untimed, then
 *     cancel_delayed_work_sync.
 *   FLUSH_IDLE (flush-idle): flush_work of an idle item.
 *   DISABLE (disable): disable_work of an idle item, then enable untimed.
 *   ENABLE (enable): disable untimed, then enable_work.
 *   STATIC (static): queue a static (DECLARE_WORK) item, then flush it
 *     untimed.
 *   DELAYED_PAR (delayed-par): DELAYED on `threads` kthreads at once (0: one
 *     per online CPU, bound to the first ones), each arming its own item on
 *     the same queue.
 *   DROP_ARMED (drop-armed): per round, `items` new delayed items armed
 *     (10 s) on a new WQ_PERCPU queue, allocated and armed untimed; timed:
 *     dropping the queue, which cancels every armed item and destroys it (the
 *     C twin: cancel_delayed_work_sync() of each, then destroy_workqueue()).
 *     queue_p* are of the time per item of each round.  The items (one
 *     allocation each) exist only during their round.
 */
#define RUST_WQ_BENCH_OP_RT 0
#define RUST_WQ_BENCH_OP_QUEUE 1
#define RUST_WQ_BENCH_OP_QUEUE_FRESH 2
#define RUST_WQ_BENCH_OP_QUEUE_ON 3
#define RUST_WQ_BENCH_OP_DELAYED 4
#define RUST_WQ_BENCH_OP_MOD_DELAYED 5
#define RUST_WQ_BENCH_OP_CANCEL_IDLE 6
#define RUST_WQ_BENCH_OP_CANCEL_ARMED 7
#define RUST_WQ_BENCH_OP_CANCEL_SYNC_IDLE 8
#define RUST_WQ_BENCH_OP_CANCEL_SYNC_ARMED 9
#define RUST_WQ_BENCH_OP_FLUSH_IDLE 10
#define RUST_WQ_BENCH_OP_DISABLE 11
#define RUST_WQ_BENCH_OP_ENABLE 12
#define RUST_WQ_BENCH_OP_STATIC 13
#define RUST_WQ_BENCH_OP_DELAYED_PAR 14
#define RUST_WQ_BENCH_OP_DROP_ARMED 15
#define RUST_WQ_BENCH_OP_COUNT 16

struct rust_wq_bench {
	__u32 version;
	__u32 path;          /* RUST_WQ_BENCH_* */
	__u32 threads;       /* RT, QUEUE_FRESH, DELAYED_PAR: 0 = one per online CPU; others: 0 or 1 */
	__u32 items;         /* rounds per thread (DROP_ARMED: armed items per round) */
	__u32 flags;         /* RUST_WQ_BENCH_F_* */
	__u32 threads_run;   /* out */
	__u64 elapsed_ns;    /* out */
	__u64 items_per_sec; /* out */
	__u64 queue_p50_ns;  /* out: the timed call */
	__u64 queue_p90_ns;
	__u64 queue_p95_ns;
	__u64 start_p50_ns;  /* out: queueing to start of the work function */
	__u64 start_p90_ns;
	__u64 start_p95_ns;
	__u32 op;            /* RUST_WQ_BENCH_OP_* */
	__u32 pad;
	__u64 queue_p99_ns;  /* out */
	__u64 reserved[2];
};

#define RUST_WQ_IOC_INFO      _IOR(RUST_WQ_IOC_MAGIC, 0x00, struct rust_wq_info)
#define RUST_WQ_IOC_ENQUEUE   _IOWR(RUST_WQ_IOC_MAGIC, 0x01, struct rust_wq_enqueue)
#define RUST_WQ_IOC_FLUSH     _IOWR(RUST_WQ_IOC_MAGIC, 0x02, struct rust_wq_target)
#define RUST_WQ_IOC_CANCEL    _IOWR(RUST_WQ_IOC_MAGIC, 0x03, struct rust_wq_target)
#define RUST_WQ_IOC_MOD_DELAY _IOW(RUST_WQ_IOC_MAGIC, 0x04, struct rust_wq_mod_delay)
#define RUST_WQ_IOC_RESULTS   _IOWR(RUST_WQ_IOC_MAGIC, 0x05, struct rust_wq_results)
#define RUST_WQ_IOC_STATS     _IOR(RUST_WQ_IOC_MAGIC, 0x06, struct rust_wq_stats)
/* Cancel everything of this file (as CANCEL ALL), drop its results, zero its counters. */
#define RUST_WQ_IOC_RESET     _IO(RUST_WQ_IOC_MAGIC, 0x07)
#define RUST_WQ_IOC_BENCH     _IOWR(RUST_WQ_IOC_MAGIC, 0x08, struct rust_wq_bench)

#endif /* _UAPI_RUST_WQ_H */
