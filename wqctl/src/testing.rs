//! What the test binaries (`rust_wq_e2e`, `rust_wq_stress`) share: the KTAP
//! runner and its outcomes ([`ktap`]), a collector of failed expectations
//! ([`checker`]) and raw memory for hostile pointers ([`memory`]).

pub mod checker;
pub mod ktap;
pub mod memory;

use crate::abi;

pub use checker::{open, Checker};
pub use ktap::{
    diag, fail, panic_message, required, skip, unavailable, Must, Outcome, Selection, TestResult,
};
/// Every queue of the device (`RUST_WQ_Q_*`), in the order of their numbers.
pub const ALL_QUEUES: [u32; 5] = [
    abi::RUST_WQ_Q_PERCPU,
    abi::RUST_WQ_Q_UNBOUND,
    abi::RUST_WQ_Q_ORDERED,
    abi::RUST_WQ_Q_SYSTEM_PERCPU,
    abi::RUST_WQ_Q_SYSTEM_DFL,
];

pub use memory::{page_size, unmapped_addr, Pages, RawBuf, KERNEL_ADDRS};
