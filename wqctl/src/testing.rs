//! What the test binaries (`rust_wq_e2e`, `rust_wq_stress`) share: the KTAP
//! runner and its outcomes ([`ktap`]), a collector of failed expectations
//! ([`checker`]) and raw memory for hostile pointers ([`memory`]).

pub mod checker;
pub mod ktap;
pub mod memory;

pub use checker::{open, Checker};
pub use ktap::{
    diag, fail, panic_message, required, skip, unavailable, Must, Outcome, Selection, TestResult,
};
pub use memory::{page_size, unmapped_addr, Pages, RawBuf, KERNEL_ADDRS};
