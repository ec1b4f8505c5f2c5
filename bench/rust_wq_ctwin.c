// SPDX-License-Identifier: GPL-2.0
/*
 * rust_wq_ctwin: the C twin of rust_wq's benchmark (src/bench.rs).
 *
 * It makes the kernel calls the Rust benchmark makes, from the same kind of
 * thread, with the same queues (same flags), the same item reuse and the same
 * timing points (ktime_get() right before and right after the timed call), so
 * that Rust/C isolates the cost of the Rust layer.  Where the Rust layer does
 * more by design (the bookkeeping of tracked delayed items, a static item's
 * lazy initialisation) this module does what C code would do, and the report
 * says what the difference is.
 *
 * Like lib/test_workqueue.c it runs everything at load time, prints one line
 * per run and then refuses to stay loaded (-EAGAIN).
 *
 *   insmod rust_wq_ctwin.ko items=1000 runs=queue:percpu,delayed:system-percpu
 *   insmod rust_wq_ctwin.ko items=1000 runs=rt:percpu:4
 *   insmod rust_wq_ctwin.ko items=1000 runs=queue:unbound-sysfs scope=cache
 *   insmod rust_wq_ctwin.ko items=1000 runs=delayed-par:percpu:4,drop-armed:percpu:100000
 *
 * A run is OP:QUEUE[:THREADS]; the operations are those of src/bench.rs (see
 * op_names below and include/rust_wq.h, RUST_WQ_BENCH_OP_*).  For
 * "drop-armed" the third field is N, the number of armed items (the run is
 * then DROP_ROUNDS rounds on one thread, see one_round_drop()).  Each run
 * prints
 *
 *   rust_wq_ctwin: run op=OP queue=QUEUE threads=T items=N p50=.. p90=.. p95=.. p99=.. elapsed_ns=..
 *
 * The round-trip runs "rt" and "queue-fresh" use THREADS kthreads (0: one per
 * online CPU) bound to the first THREADS online CPUs, each queueing one item
 * and waiting for it; "queue-fresh" allocates and initialises a new item every
 * round, as the Rust side does (lib/test_workqueue.c re-initialises one item
 * in place with INIT_WORK).  Threads that are done sleep on a completion until
 * the last one is (they do not spin), so that under QEMU -icount
 * elapsed_ns / (THREADS * items) is the guest instructions spent per completed
 * item.  "delayed-par" is "delayed" on THREADS kthreads at once (0: one per
 * online CPU), each arming its own item on the same queue.  Every other
 * operation runs on one kthread bound to the first online CPU, each round
 * doing the untimed set-up, the timed call and the untimed tear-down.
 */
#include <linux/atomic.h>
#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/fs.h>
#include <linux/kthread.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/string.h>
#include <linux/workqueue.h>

#define TWIN_WQ_PERCPU "rust_wq_ctwin_pcpu"
#define TWIN_WQ_UNBOUND "rust_wq_ctwin"
#define SCOPE_PATH "/sys/bus/workqueue/devices/" TWIN_WQ_UNBOUND "/affinity_scope"
#define MAX_THREADS 64
/* The delay of armed items: long enough never to fire during a round. */
#define ARM_DELAY (10 * HZ)
/* Rounds of a drop-armed run, and its largest N (src/bench.rs: DROP_ROUNDS, DROP_MAX_ITEMS). */
#define DROP_ROUNDS 5
#define DROP_MAX_ITEMS 200000

static int items = 1000;
module_param(items, int, 0444);
MODULE_PARM_DESC(items, "rounds per run and thread (default 1000)");

static char *runs = "queue:percpu";
module_param(runs, charp, 0444);
MODULE_PARM_DESC(runs, "comma-separated OP:QUEUE[:THREADS] runs");

static char *scope;
module_param(scope, charp, 0444);
MODULE_PARM_DESC(scope, "affinity scope for the unbound-sysfs queue (default: the kernel's)");

enum twin_op {
	OP_RT,
	OP_QUEUE,
	OP_QUEUE_FRESH,
	OP_QUEUE_ON,
	OP_DELAYED,
	OP_MOD_DELAYED,
	OP_CANCEL_IDLE,
	OP_CANCEL_ARMED,
	OP_CANCEL_SYNC_IDLE,
	OP_CANCEL_SYNC_ARMED,
	OP_FLUSH_IDLE,
	OP_DISABLE,
	OP_ENABLE,
	OP_STATIC,
	OP_DELAYED_PAR,
	OP_DROP_ARMED,
};

/* Names as `wqctl bench --op` spells them; the index is the ABI number. */
static const char *const op_names[] = {
	[OP_RT] = "rt",
	[OP_QUEUE] = "queue",
	[OP_QUEUE_FRESH] = "queue-fresh",
	[OP_QUEUE_ON] = "queue-on",
	[OP_DELAYED] = "delayed",
	[OP_MOD_DELAYED] = "mod-delayed",
	[OP_CANCEL_IDLE] = "cancel-idle",
	[OP_CANCEL_ARMED] = "cancel-armed",
	[OP_CANCEL_SYNC_IDLE] = "cancel-sync-idle",
	[OP_CANCEL_SYNC_ARMED] = "cancel-sync-armed",
	[OP_FLUSH_IDLE] = "flush-idle",
	[OP_DISABLE] = "disable",
	[OP_ENABLE] = "enable",
	[OP_STATIC] = "static",
	[OP_DELAYED_PAR] = "delayed-par",
	[OP_DROP_ARMED] = "drop-armed",
};

static struct workqueue_struct *percpu_wq, *unbound_wq;

/* One thread's item and samples. */
struct twin_ctx {
	struct work_struct work;
	struct delayed_work dwork;
	struct completion done;
	struct workqueue_struct *wq;
	enum twin_op op;
	int cpu;
	int rounds;
	int drop_n; /* drop-armed: the armed items of each round */
	u64 *lat;
	struct completion *start;
	atomic_t *left;
	struct completion *all_done;
	struct completion *stop;
};

/* A freshly allocated item of "queue-fresh" (the Rust side allocates one per round too). */
struct twin_fresh {
	struct work_struct work;
	struct completion done;
};

static void twin_work_fn(struct work_struct *work)
{
	struct twin_ctx *ctx = container_of(work, struct twin_ctx, work);

	complete(&ctx->done);
}

static void twin_dwork_fn(struct work_struct *work)
{
	struct twin_ctx *ctx = container_of(to_delayed_work(work), struct twin_ctx, dwork);

	complete(&ctx->done);
}

static void twin_fresh_fn(struct work_struct *work)
{
	struct twin_fresh *f = container_of(work, struct twin_fresh, work);

	complete(&f->done);
}

/* The static item does nothing: each round flushes it. */
static void twin_static_fn(struct work_struct *work)
{
}

static DECLARE_WORK(twin_static_work, twin_static_fn);

static void twin_drop_fn(struct work_struct *work)
{
}

/*
 * One round of drop-armed: N delayed items armed on a new WQ_PERCPU queue
 * (allocated, initialised and armed untimed), then what C code does before
 * destroying such a queue, timed: cancel_delayed_work_sync() of each item, and
 * destroy_workqueue() (which does not cancel armed timers itself).  Returns
 * the time per item.
 */
static s64 one_round_drop(struct twin_ctx *c)
{
	struct workqueue_struct *wq;
	struct delayed_work *dw;
	ktime_t t0, t1;
	int i;

	wq = alloc_workqueue("rust_wq_ctwin_drop", WQ_PERCPU, 0);
	if (!wq)
		return -ENOMEM;
	dw = kvmalloc_array(c->drop_n, sizeof(*dw), GFP_KERNEL);
	if (!dw) {
		destroy_workqueue(wq);
		return -ENOMEM;
	}
	for (i = 0; i < c->drop_n; i++) {
		INIT_DELAYED_WORK(&dw[i], twin_drop_fn);
		queue_delayed_work(wq, &dw[i], ARM_DELAY);
	}
	t0 = ktime_get();
	for (i = 0; i < c->drop_n; i++)
		cancel_delayed_work_sync(&dw[i]);
	destroy_workqueue(wq);
	t1 = ktime_get();
	kvfree(dw);
	return div_s64(ktime_to_ns(ktime_sub(t1, t0)), c->drop_n);
}

/* One round: untimed set-up, the timed call, untimed tear-down; returns the time or -ENOMEM. */
static s64 one_round(struct twin_ctx *c)
{
	struct workqueue_struct *wq = c->wq;
	struct twin_fresh *f;
	ktime_t t0, t1;

	switch (c->op) {
	case OP_RT:
	case OP_QUEUE:
		t0 = ktime_get();
		queue_work(wq, &c->work);
		t1 = ktime_get();
		wait_for_completion(&c->done);
		break;
	case OP_QUEUE_FRESH:
		f = kmalloc(sizeof(*f), GFP_KERNEL);
		if (!f)
			return -ENOMEM;
		INIT_WORK(&f->work, twin_fresh_fn);
		init_completion(&f->done);
		t0 = ktime_get();
		queue_work(wq, &f->work);
		t1 = ktime_get();
		wait_for_completion(&f->done);
		/* The worker is done with the item: complete() was its last access. */
		kfree(f);
		break;
	case OP_QUEUE_ON:
		t0 = ktime_get();
		queue_work_on(c->cpu, wq, &c->work);
		t1 = ktime_get();
		wait_for_completion(&c->done);
		break;
	case OP_DELAYED:
	case OP_DELAYED_PAR:
		t0 = ktime_get();
		queue_delayed_work(wq, &c->dwork, ARM_DELAY);
		t1 = ktime_get();
		cancel_delayed_work(&c->dwork);
		break;
	case OP_MOD_DELAYED:
		queue_delayed_work(wq, &c->dwork, ARM_DELAY);
		t0 = ktime_get();
		mod_delayed_work(wq, &c->dwork, 2 * ARM_DELAY);
		t1 = ktime_get();
		cancel_delayed_work(&c->dwork);
		break;
	case OP_CANCEL_IDLE:
		t0 = ktime_get();
		cancel_delayed_work(&c->dwork);
		t1 = ktime_get();
		break;
	case OP_CANCEL_ARMED:
		queue_delayed_work(wq, &c->dwork, ARM_DELAY);
		t0 = ktime_get();
		cancel_delayed_work(&c->dwork);
		t1 = ktime_get();
		break;
	case OP_CANCEL_SYNC_IDLE:
		t0 = ktime_get();
		cancel_delayed_work_sync(&c->dwork);
		t1 = ktime_get();
		break;
	case OP_CANCEL_SYNC_ARMED:
		queue_delayed_work(wq, &c->dwork, ARM_DELAY);
		t0 = ktime_get();
		cancel_delayed_work_sync(&c->dwork);
		t1 = ktime_get();
		break;
	case OP_FLUSH_IDLE:
		t0 = ktime_get();
		flush_work(&c->work);
		t1 = ktime_get();
		break;
	case OP_DISABLE:
		t0 = ktime_get();
		disable_work(&c->work);
		t1 = ktime_get();
		enable_work(&c->work);
		break;
	case OP_ENABLE:
		disable_work(&c->work);
		t0 = ktime_get();
		enable_work(&c->work);
		t1 = ktime_get();
		break;
	case OP_STATIC:
		t0 = ktime_get();
		queue_work(wq, &twin_static_work);
		t1 = ktime_get();
		flush_work(&twin_static_work);
		break;
	case OP_DROP_ARMED:
		return one_round_drop(c);
	default:
		return 0;
	}
	return ktime_to_ns(ktime_sub(t1, t0));
}

static int twin_thread(void *data)
{
	struct twin_ctx *c = data;
	int i, ret = 0;

	wait_for_completion(c->start);
	if (!kthread_should_stop()) {
		for (i = 0; i < c->rounds; i++) {
			s64 ns = one_round(c);

			if (ns < 0) {
				ret = ns;
				break;
			}
			c->lat[i] = ns;
		}
		if (atomic_dec_and_test(c->left))
			complete(c->all_done);
	}
	/* Sleep (not spin) until every thread is done; the run then stops us. */
	wait_for_completion(c->stop);
	return ret;
}

static int cmp_u64(const void *a, const void *b)
{
	u64 va = *(const u64 *)a, vb = *(const u64 *)b;

	return va < vb ? -1 : va > vb;
}

static int set_affn_scope(const char *s)
{
	loff_t pos = 0;
	struct file *f;
	ssize_t ret;

	f = filp_open(SCOPE_PATH, O_WRONLY, 0);
	if (IS_ERR(f))
		return PTR_ERR(f);
	ret = kernel_write(f, s, strlen(s), &pos);
	filp_close(f, NULL);
	return ret < 0 ? ret : 0;
}

static int one_run(enum twin_op op, const char *qname, int n_threads)
{
	/* drop-armed: the third field is N, and the run has DROP_ROUNDS rounds on one thread. */
	int drop_n = op == OP_DROP_ARMED ? n_threads : 0;
	int rounds = op == OP_DROP_ARMED ? DROP_ROUNDS : items;
	DECLARE_COMPLETION_ONSTACK(start);
	DECLARE_COMPLETION_ONSTACK(all_done);
	DECLARE_COMPLETION_ONSTACK(stop);
	struct task_struct *tasks[MAX_THREADS];
	struct workqueue_struct *wq;
	struct twin_ctx *ctxs;
	u64 *all, total;
	ktime_t t_start;
	s64 elapsed;
	atomic_t left;
	int i, cpu, ret = 0;

	if (!strcmp(qname, "percpu"))
		wq = percpu_wq;
	else if (!strcmp(qname, "unbound-sysfs"))
		wq = unbound_wq;
	else if (!strcmp(qname, "system-percpu"))
		wq = system_percpu_wq;
	else
		return -EINVAL;
	if (op == OP_DROP_ARMED && (wq != percpu_wq || drop_n < 1 || drop_n > DROP_MAX_ITEMS))
		return -EINVAL;
	if (op != OP_RT && op != OP_QUEUE_FRESH && op != OP_DELAYED_PAR)
		n_threads = 1;
	if (n_threads == 0)
		n_threads = num_online_cpus();
	if (n_threads < 1 || n_threads > MAX_THREADS || n_threads > num_online_cpus())
		return -EINVAL;

	ctxs = kcalloc(n_threads, sizeof(*ctxs), GFP_KERNEL);
	total = (u64)n_threads * rounds;
	all = kvmalloc_array(total, sizeof(u64), GFP_KERNEL);
	if (!ctxs || !all) {
		ret = -ENOMEM;
		goto out;
	}
	atomic_set(&left, n_threads);
	cpu = cpumask_first(cpu_online_mask);
	for (i = 0; i < n_threads; i++) {
		struct twin_ctx *c = &ctxs[i];

		INIT_WORK(&c->work, twin_work_fn);
		INIT_DELAYED_WORK(&c->dwork, twin_dwork_fn);
		init_completion(&c->done);
		c->wq = wq;
		c->op = op;
		c->cpu = cpu;
		c->rounds = rounds;
		c->drop_n = drop_n;
		c->lat = all + (u64)i * rounds;
		c->start = &start;
		c->left = &left;
		c->all_done = &all_done;
		c->stop = &stop;
		tasks[i] = kthread_create_on_cpu(twin_thread, c, cpu, "ctwin/%u");
		if (IS_ERR(tasks[i])) {
			ret = PTR_ERR(tasks[i]);
			complete_all(&start);
			complete_all(&stop);
			while (--i >= 0)
				kthread_stop_put(tasks[i]);
			goto out;
		}
		get_task_struct(tasks[i]);
		wake_up_process(tasks[i]);
		cpu = cpumask_next(cpu, cpu_online_mask);
	}

	t_start = ktime_get();
	complete_all(&start);
	wait_for_completion(&all_done);
	if (wq == system_percpu_wq) {
		for (i = 0; i < n_threads; i++)
			flush_work(&ctxs[i].work);
	} else {
		flush_workqueue(wq);
	}
	complete_all(&stop);
	for (i = 0; i < n_threads; i++) {
		int r = kthread_stop_put(tasks[i]);

		if (r && !ret)
			ret = r;
	}
	elapsed = ktime_to_ns(ktime_sub(ktime_get(), t_start));

	if (ret)
		goto out;
	sort(all, total, sizeof(u64), cmp_u64, NULL);
	pr_info("rust_wq_ctwin: run op=%s queue=%s threads=%d items=%d p50=%llu p90=%llu p95=%llu p99=%llu elapsed_ns=%lld\n",
		op_names[op], qname, n_threads, op == OP_DROP_ARMED ? drop_n : items,
		all[total * 50 / 100], all[total * 90 / 100], all[total * 95 / 100],
		all[total * 99 / 100], elapsed);
out:
	kvfree(all);
	kfree(ctxs);
	return ret;
}

static int parse_op(const char *s)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(op_names); i++)
		if (!strcmp(s, op_names[i]))
			return i;
	return -EINVAL;
}

static int __init twin_init(void)
{
	char *list, *cursor, *run;
	int ret = 0;

	if (items <= 0 || items > 1000000)
		return -EINVAL;
	/* The same flags as the Rust benchmark's queues (src/bench.rs, src/device.rs). */
	percpu_wq = alloc_workqueue(TWIN_WQ_PERCPU, WQ_PERCPU, 0);
	unbound_wq = alloc_workqueue(TWIN_WQ_UNBOUND, WQ_UNBOUND | WQ_SYSFS, 0);
	if (!percpu_wq || !unbound_wq) {
		ret = -ENOMEM;
		goto out;
	}
	if (scope) {
		ret = set_affn_scope(scope);
		if (ret) {
			pr_err("rust_wq_ctwin: cannot set affinity scope '%s': %d\n", scope, ret);
			goto out;
		}
	}
	list = kstrdup(runs, GFP_KERNEL);
	if (!list) {
		ret = -ENOMEM;
		goto out;
	}
	cursor = list;
	while ((run = strsep(&cursor, ",")) != NULL) {
		char *opname = strsep(&run, ":");
		char *qname = run ? strsep(&run, ":") : NULL;
		int op = parse_op(opname), threads = 1, r;

		if (run && kstrtoint(run, 10, &threads))
			threads = -1;
		if (op < 0 || !qname) {
			pr_err("rust_wq_ctwin: bad run '%s'\n", opname);
			ret = -EINVAL;
			break;
		}
		r = one_run(op, qname, threads);
		if (r) {
			pr_err("rust_wq_ctwin: run %s:%s:%d failed: %d\n", opname, qname, threads, r);
			ret = r;
			break;
		}
	}
	kfree(list);
	/* The static item may have been queued: it must be idle before the module text goes. */
	flush_work(&twin_static_work);
out:
	if (unbound_wq)
		destroy_workqueue(unbound_wq);
	if (percpu_wq)
		destroy_workqueue(percpu_wq);
	/* Do not stay loaded: every run has printed its line. */
	return ret ? ret : -EAGAIN;
}

module_init(twin_init);
MODULE_DESCRIPTION("rust_wq: the C twin of the Rust workqueue benchmark");
MODULE_LICENSE("GPL");
