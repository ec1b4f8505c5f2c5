// SPDX-License-Identifier: GPL-2.0
//! The deprecated `system_wq` (7.3 logs "enqueued on deprecated workqueue") is not offered;
//! `system_percpu()` replaces it (and `system_dfl()` replaces `system_unbound_wq`).
// expect-error: E0425\]: cannot find function `system_wq` in module `crate::workqueue`
fn _case() {
    let _ = crate::workqueue::system_wq();
}
