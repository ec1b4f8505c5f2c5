// SPDX-License-Identifier: GPL-2.0
/*
 * abi_check: exercise /dev/rust_wq from C through include/rust_wq.h only,
 * to prove the header is usable as-is by C programs.  Runs as root in the
 * test VM with the module loaded; prints KTAP version 1.
 *
 * Build: cc -O2 -Wall -Werror -I include -o abi_check tests/abi_check.c
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "rust_wq.h"

/* The layout promised by the header: fixed sizes on every ABI. */
_Static_assert(sizeof(struct rust_wq_info) == 80, "rust_wq_info size");
_Static_assert(sizeof(struct rust_wq_enqueue) == 64, "rust_wq_enqueue size");
_Static_assert(sizeof(struct rust_wq_target) == 48, "rust_wq_target size");
_Static_assert(sizeof(struct rust_wq_mod_delay) == 40, "rust_wq_mod_delay size");
_Static_assert(sizeof(struct rust_wq_result) == 64, "rust_wq_result size");
_Static_assert(sizeof(struct rust_wq_results) == 48, "rust_wq_results size");
_Static_assert(sizeof(struct rust_wq_stats) == 64, "rust_wq_stats size");
_Static_assert(sizeof(struct rust_wq_bench) == 120, "rust_wq_bench size");
_Static_assert(RUST_WQ_BENCH_OP_COUNT == 16, "RUST_WQ_BENCH_OP_* count");

/* Every field at the offset the Rust mirrors (src/abi.rs, wqctl/src/abi.rs) use. */
#define OFF(s, f, o) _Static_assert(offsetof(struct s, f) == (o), #s "." #f " offset")
OFF(rust_wq_info, abi_version, 0);
OFF(rust_wq_info, nr_cpu_ids, 4);
OFF(rust_wq_info, max_count, 8);
OFF(rust_wq_info, max_pending, 12);
OFF(rust_wq_info, max_delay_us, 16);
OFF(rust_wq_info, max_sleep_us, 24);
OFF(rust_wq_info, online_cpus, 32);
OFF(rust_wq_info, max_results, 40);
OFF(rust_wq_info, device_irq, 44);
OFF(rust_wq_info, device_flags, 48);
OFF(rust_wq_info, device_irqs, 56);
OFF(rust_wq_info, device_bh_queued, 64);
OFF(rust_wq_info, device_bh_runs, 72);
OFF(rust_wq_enqueue, version, 0);
OFF(rust_wq_enqueue, queue, 4);
OFF(rust_wq_enqueue, cpu, 8);
OFF(rust_wq_enqueue, count, 12);
OFF(rust_wq_enqueue, delay_us, 16);
OFF(rust_wq_enqueue, sleep_us, 24);
OFF(rust_wq_enqueue, tag, 32);
OFF(rust_wq_enqueue, first_id, 40);
OFF(rust_wq_enqueue, flags, 48);
OFF(rust_wq_enqueue, reserved, 56);
OFF(rust_wq_target, version, 0);
OFF(rust_wq_target, kind, 4);
OFF(rust_wq_target, queue, 8);
OFF(rust_wq_target, pad, 12);
OFF(rust_wq_target, id, 16);
OFF(rust_wq_target, count, 24);
OFF(rust_wq_target, reserved, 32);
OFF(rust_wq_mod_delay, version, 0);
OFF(rust_wq_mod_delay, pad, 4);
OFF(rust_wq_mod_delay, id, 8);
OFF(rust_wq_mod_delay, delay_us, 16);
OFF(rust_wq_mod_delay, reserved, 24);
OFF(rust_wq_result, id, 0);
OFF(rust_wq_result, tag, 8);
OFF(rust_wq_result, seq, 16);
OFF(rust_wq_result, latency_ns, 24);
OFF(rust_wq_result, runtime_ns, 32);
OFF(rust_wq_result, requested_cpu, 40);
OFF(rust_wq_result, cpu, 44);
OFF(rust_wq_result, queue, 48);
OFF(rust_wq_result, flags, 52);
OFF(rust_wq_result, reserved, 56);
OFF(rust_wq_results, version, 0);
OFF(rust_wq_results, capacity, 4);
OFF(rust_wq_results, buf, 8);
OFF(rust_wq_results, count, 16);
OFF(rust_wq_results, pad, 20);
OFF(rust_wq_results, dropped, 24);
OFF(rust_wq_results, reserved, 32);
OFF(rust_wq_stats, enqueued, 0);
OFF(rust_wq_stats, executed, 8);
OFF(rust_wq_stats, cancelled, 16);
OFF(rust_wq_stats, pending, 24);
OFF(rust_wq_stats, results_dropped, 32);
OFF(rust_wq_stats, reserved, 40);
OFF(rust_wq_bench, version, 0);
OFF(rust_wq_bench, path, 4);
OFF(rust_wq_bench, threads, 8);
OFF(rust_wq_bench, items, 12);
OFF(rust_wq_bench, flags, 16);
OFF(rust_wq_bench, threads_run, 20);
OFF(rust_wq_bench, elapsed_ns, 24);
OFF(rust_wq_bench, items_per_sec, 32);
OFF(rust_wq_bench, queue_p50_ns, 40);
OFF(rust_wq_bench, queue_p90_ns, 48);
OFF(rust_wq_bench, queue_p95_ns, 56);
OFF(rust_wq_bench, start_p50_ns, 64);
OFF(rust_wq_bench, start_p90_ns, 72);
OFF(rust_wq_bench, start_p95_ns, 80);
OFF(rust_wq_bench, op, 88);
OFF(rust_wq_bench, pad, 92);
OFF(rust_wq_bench, queue_p99_ns, 96);
OFF(rust_wq_bench, reserved, 104);

/* The ioctl numbers encode those sizes. */
_Static_assert(_IOC_SIZE(RUST_WQ_IOC_INFO) == sizeof(struct rust_wq_info), "INFO size");
_Static_assert(_IOC_SIZE(RUST_WQ_IOC_ENQUEUE) == sizeof(struct rust_wq_enqueue), "ENQUEUE size");
_Static_assert(_IOC_SIZE(RUST_WQ_IOC_BENCH) == sizeof(struct rust_wq_bench), "BENCH size");
_Static_assert(_IOC_NR(RUST_WQ_IOC_BENCH) == 0x08, "BENCH nr");

static int failures;

static void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static void result(int n, int ok, const char *name)
{
	if (!ok)
		failures++;
	printf("%sok %d %s\n", ok ? "" : "not ", n, name);
	fflush(stdout);
}

int main(void)
{
	struct rust_wq_info info;
	struct rust_wq_enqueue enq;
	struct rust_wq_target tgt;
	struct rust_wq_results res;
	struct rust_wq_result buf[4];
	int fd, ok;

	printf("KTAP version 1\n1..4\n");
	fd = open(RUST_WQ_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("Bail out! open %s: %s\n", RUST_WQ_DEVICE, strerror(errno));
		return 1;
	}

	/* 1: INFO */
	memset(&info, 0xff, sizeof(info));
	ok = ioctl(fd, RUST_WQ_IOC_INFO, &info) == 0;
	if (!ok) {
		diag("RUST_WQ_IOC_INFO: %s", strerror(errno));
	} else {
		diag("abi_version %u nr_cpu_ids %u online_cpus %#llx max_count %u",
		     info.abi_version, info.nr_cpu_ids,
		     (unsigned long long)info.online_cpus, info.max_count);
		diag("edu device flags %#llx irq %u, %llu interrupts, static item queued %llu ran %llu",
		     (unsigned long long)info.device_flags, info.device_irq,
		     (unsigned long long)info.device_irqs,
		     (unsigned long long)info.device_bh_queued,
		     (unsigned long long)info.device_bh_runs);
		if (info.abi_version != RUST_WQ_ABI_VERSION || info.nr_cpu_ids < 1 ||
		    info.max_count != RUST_WQ_MAX_COUNT ||
		    info.max_pending != RUST_WQ_MAX_PENDING ||
		    info.max_delay_us != RUST_WQ_MAX_DELAY_US ||
		    info.max_sleep_us != RUST_WQ_MAX_SLEEP_US ||
		    info.max_results != RUST_WQ_MAX_RESULTS ||
		    info.online_cpus == 0 ||
		    (info.device_flags & ~(RUST_WQ_INFO_DEVICE_BOUND | RUST_WQ_INFO_DEVICE_MSI)) ||
		    !(info.device_flags & RUST_WQ_INFO_DEVICE_BOUND) != !info.device_irq ||
		    info.device_bh_runs > info.device_bh_queued ||
		    info.device_bh_queued > info.device_irqs) {
			diag("expected version %d, the header's limits, known device flags, an IRQ "
			     "number exactly when a device is bound, runs <= queued <= interrupts",
			     RUST_WQ_ABI_VERSION);
			ok = 0;
		}
	}
	result(1, ok, "info");

	/* 2: ENQUEUE one item, then FLUSH ALL */
	memset(&enq, 0, sizeof(enq));
	enq.version = RUST_WQ_ABI_VERSION;
	enq.queue = RUST_WQ_Q_UNBOUND;
	enq.cpu = RUST_WQ_CPU_ANY;
	enq.count = 1;
	enq.sleep_us = 1000;
	enq.tag = 0xC0FFEE;
	ok = ioctl(fd, RUST_WQ_IOC_ENQUEUE, &enq) == 0;
	if (!ok)
		diag("RUST_WQ_IOC_ENQUEUE: %s", strerror(errno));
	else if (enq.first_id != 1) {
		diag("first_id: expected 1 (fresh file), seen %llu",
		     (unsigned long long)enq.first_id);
		ok = 0;
	}
	if (ok) {
		memset(&tgt, 0, sizeof(tgt));
		tgt.version = RUST_WQ_ABI_VERSION;
		tgt.kind = RUST_WQ_TARGET_ALL;
		if (ioctl(fd, RUST_WQ_IOC_FLUSH, &tgt) != 0) {
			diag("RUST_WQ_IOC_FLUSH: %s", strerror(errno));
			ok = 0;
		} else if (tgt.count > 1) {
			diag("FLUSH count: expected 0 or 1, seen %llu",
			     (unsigned long long)tgt.count);
			ok = 0;
		}
	}
	result(2, ok, "enqueue_flush");

	/* 3: RESULTS */
	memset(buf, 0xff, sizeof(buf));
	memset(&res, 0, sizeof(res));
	res.version = RUST_WQ_ABI_VERSION;
	res.capacity = 4;
	res.buf = (__u64)(uintptr_t)buf;
	ok = ioctl(fd, RUST_WQ_IOC_RESULTS, &res) == 0;
	if (!ok) {
		diag("RUST_WQ_IOC_RESULTS: %s", strerror(errno));
	} else if (res.count != 1 || buf[0].id != enq.first_id ||
		   buf[0].tag != 0xC0FFEE || buf[0].queue != RUST_WQ_Q_UNBOUND ||
		   buf[0].requested_cpu != RUST_WQ_CPU_ANY ||
		   buf[0].cpu >= info.nr_cpu_ids ||
		   buf[0].runtime_ns < 1000000 ||
		   !(buf[0].flags & RUST_WQ_RES_PROCESS_CTX) ||
		   !(buf[0].flags & RUST_WQ_RES_SLEPT) || buf[0].reserved != 0) {
		diag("expected 1 result: id %llu tag 0xc0ffee unbound cpu any, runtime >= 1ms, PROCESS_CTX|SLEPT",
		     (unsigned long long)enq.first_id);
		diag("seen count %u: id %llu tag %#llx queue %u req_cpu %#x cpu %u runtime_ns %llu flags %#x",
		     res.count, (unsigned long long)buf[0].id,
		     (unsigned long long)buf[0].tag, buf[0].queue,
		     buf[0].requested_cpu, buf[0].cpu,
		     (unsigned long long)buf[0].runtime_ns, buf[0].flags);
		ok = 0;
	}
	result(3, ok, "results");

	/* 4: BENCH, one thread, a few rounds */
	{
		struct rust_wq_bench b;

		memset(&b, 0, sizeof(b));
		b.version = RUST_WQ_ABI_VERSION;
		b.path = RUST_WQ_BENCH_PERCPU;
		b.threads = 1;
		b.items = 10;
		ok = ioctl(fd, RUST_WQ_IOC_BENCH, &b) == 0;
		if (!ok) {
			diag("RUST_WQ_IOC_BENCH: %s", strerror(errno));
		} else if (b.threads_run != 1 || b.elapsed_ns == 0 ||
			   b.items_per_sec == 0 || b.queue_p50_ns == 0 ||
			   b.reserved[0] || b.reserved[1]) {
			diag("BENCH: threads_run %u elapsed_ns %llu items_per_sec %llu queue_p50_ns %llu",
			     b.threads_run, (unsigned long long)b.elapsed_ns,
			     (unsigned long long)b.items_per_sec,
			     (unsigned long long)b.queue_p50_ns);
			ok = 0;
		}
		/* Upstream's Rust with boxed items, and a drop of 10 armed items. */
		b.op = RUST_WQ_BENCH_OP_QUEUE;
		b.flags = RUST_WQ_BENCH_F_UPSTREAM | RUST_WQ_BENCH_F_KBOX;
		b.reserved[0] = b.reserved[1] = 0;
		if (ok && (ioctl(fd, RUST_WQ_IOC_BENCH, &b) != 0 || b.queue_p50_ns == 0)) {
			diag("BENCH upstream, KBox: %s", strerror(errno));
			ok = 0;
		}
		b.op = RUST_WQ_BENCH_OP_DROP_ARMED;
		b.flags = 0;
		if (ok && (ioctl(fd, RUST_WQ_IOC_BENCH, &b) != 0 || b.queue_p50_ns == 0)) {
			diag("BENCH drop-armed: %s", strerror(errno));
			ok = 0;
		}
	}
	result(4, ok, "bench");

	close(fd);
	printf("# Totals: pass:%d fail:%d skip:0\n", 4 - failures, failures);
	return failures ? 1 : 0;
}
