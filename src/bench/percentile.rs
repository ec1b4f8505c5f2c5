// SPDX-License-Identifier: GPL-2.0

//! Percentiles of the benchmark's samples, as `lib/test_workqueue.c` reports them.

/// p50, p90, p95 and p99, indexed as `lib/test_workqueue.c` does (`sorted[n * p / 100]`).
pub(crate) fn percentiles(v: &mut [u64]) -> [u64; 4] {
    if v.is_empty() {
        return [0; 4];
    }
    heapsort(v);
    let n = v.len();
    [
        v[n * 50 / 100],
        v[n * 90 / 100],
        v[n * 95 / 100],
        v[n * 99 / 100],
    ]
}

/// Sorts in place in O(n log n) without allocating.
///
/// `core`'s `sort_unstable` is avoided on purpose: its quicksort trips objtool's control-flow
/// checks ("falls through to next function") in kernel builds.
fn heapsort(v: &mut [u64]) {
    fn sift_down(v: &mut [u64], mut root: usize, end: usize) {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                return;
            }
            if child + 1 < end && v[child] < v[child + 1] {
                child += 1;
            }
            if v[root] >= v[child] {
                return;
            }
            v.swap(root, child);
            root = child;
        }
    }
    /// Sift-downs between two scheduling points (each is at most log2(n) steps).
    const BATCH: usize = 1 << 14;
    let n = v.len();
    for (k, start) in (0..n / 2).rev().enumerate() {
        sift_down(v, start, n);
        if k % BATCH == BATCH - 1 {
            crate::kthread::schedule_point();
        }
    }
    for (k, end) in (1..n).rev().enumerate() {
        v.swap(0, end);
        sift_down(v, 0, end);
        if k % BATCH == BATCH - 1 {
            crate::kthread::schedule_point();
        }
    }
}
