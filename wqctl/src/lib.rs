//! Safe userspace access to `/dev/rust_wq` (see `include/rust_wq.h`).
//!
//! [`Device`] wraps one open file of the device.  Work items belong to the
//! open file that enqueued them: dropping the `Device` (closing the file)
//! cancels whatever has not started yet.

pub mod abi;
mod bench;
mod device;
mod errno;
pub mod hostile;
pub mod parse;
mod request;
mod results;
pub mod session;
pub mod summary;
pub mod testing;

pub use bench::{
    bench_json, bench_line, set_bench_scope, BenchArgs, BENCH_SCOPES, BENCH_SCOPE_PATH,
};
pub use device::{poll_fd, Device};
pub use errno::{Errno, Result};
pub use request::{EnqueueArgs, Target};
pub use results::{
    format_flags, format_results_table, queued_from, result_json, result_row, results_header,
};
