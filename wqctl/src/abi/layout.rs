//! The ABI structs, `#[repr(C)]` as in `include/rust_wq.h`, each with its
//! field list ([`Field`]): names, byte offsets and sizes computed by the
//! compiler (`offset_of!`, `size_of`), for tests and for tools that build or
//! mutate raw arguments (the fuzzer).

/// One field of an ABI struct: its C name, byte offset and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The field's name, the same in C and in Rust.
    pub name: &'static str,
    /// `offsetof(struct, field)`.
    pub offset: usize,
    /// `sizeof(field)` (a whole array for an array field).
    pub size: usize,
}

impl Field {
    /// The field cut into little-endian words of at most 8 bytes: itself, or
    /// one `name[i]` word per element of a `u64` array.
    pub fn words(self) -> impl Iterator<Item = Field> {
        let n = self.size.div_ceil(8).max(1);
        (0..n).map(move |i| Field {
            name: self.name,
            offset: self.offset + 8 * i,
            size: self.size.min(8),
        })
    }
}

/// The C name, size and fields of one ABI struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StructLayout {
    /// `rust_wq_info` for `struct rust_wq_info`.
    pub c_name: &'static str,
    /// `sizeof(struct ...)`.
    pub size: usize,
    /// Every field in declaration (and offset) order.
    pub fields: &'static [Field],
}

/// The [`Field`] of one struct field: `abi_field!(RustWqEnqueue, queue)`.
#[macro_export]
macro_rules! abi_field {
    ($ty:ty, $field:ident) => {
        $crate::abi::Field {
            name: stringify!($field),
            offset: ::core::mem::offset_of!($ty, $field),
            size: $crate::abi::field_size(|s: &$ty| &s.$field),
        }
    };
}

/// The size of the field that `f` selects (helper of [`abi_field!`]).
pub const fn field_size<T, F>(_f: fn(&T) -> &F) -> usize {
    core::mem::size_of::<F>()
}

/// Defines an ABI struct (`#[repr(C)]`, zero by `Default`) and its
/// `LAYOUT: StructLayout`, with the C struct name given first.
macro_rules! abi_struct {
    (
        $cname:ident,
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)+
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)+
        }

        impl $name {
            /// The C name, size and fields of this struct.
            pub const LAYOUT: StructLayout = StructLayout {
                c_name: stringify!($cname),
                size: core::mem::size_of::<$name>(),
                fields: &[$(Field {
                    name: stringify!($field),
                    offset: core::mem::offset_of!($name, $field),
                    size: core::mem::size_of::<$ty>(),
                }),+],
            };
        }
    };
}

abi_struct! {
    rust_wq_info,
    /// `struct rust_wq_info` (RUST_WQ_IOC_INFO).
    pub struct RustWqInfo {
        pub abi_version: u32,
        pub nr_cpu_ids: u32,
        pub max_count: u32,
        pub max_pending: u32,
        pub max_delay_us: u64,
        pub max_sleep_us: u64,
        pub online_cpus: u64,
        pub max_results: u32,
        pub device_irq: u32,
        pub device_flags: u64,
        pub device_irqs: u64,
        pub device_bh_queued: u64,
        pub device_bh_runs: u64,
    }
}

abi_struct! {
    rust_wq_enqueue,
    /// `struct rust_wq_enqueue` (RUST_WQ_IOC_ENQUEUE).
    pub struct RustWqEnqueue {
        pub version: u32,
        pub queue: u32,
        pub cpu: u32,
        pub count: u32,
        pub delay_us: u64,
        pub sleep_us: u64,
        pub tag: u64,
        pub first_id: u64,
        pub flags: u64,
        pub reserved: [u64; 1],
    }
}

abi_struct! {
    rust_wq_target,
    /// `struct rust_wq_target` (RUST_WQ_IOC_FLUSH / RUST_WQ_IOC_CANCEL).
    pub struct RustWqTarget {
        pub version: u32,
        pub kind: u32,
        pub queue: u32,
        pub pad: u32,
        pub id: u64,
        pub count: u64,
        pub reserved: [u64; 2],
    }
}

abi_struct! {
    rust_wq_mod_delay,
    /// `struct rust_wq_mod_delay` (RUST_WQ_IOC_MOD_DELAY).
    pub struct RustWqModDelay {
        pub version: u32,
        pub pad: u32,
        pub id: u64,
        pub delay_us: u64,
        pub reserved: [u64; 2],
    }
}

abi_struct! {
    rust_wq_result,
    /// `struct rust_wq_result`: one executed item.
    pub struct RustWqResult {
        pub id: u64,
        pub tag: u64,
        pub seq: u64,
        pub latency_ns: u64,
        pub runtime_ns: u64,
        pub requested_cpu: u32,
        pub cpu: u32,
        pub queue: u32,
        pub flags: u32,
        pub reserved: u64,
    }
}

abi_struct! {
    rust_wq_results,
    /// `struct rust_wq_results` (RUST_WQ_IOC_RESULTS).
    pub struct RustWqResults {
        pub version: u32,
        pub capacity: u32,
        pub buf: u64,
        pub count: u32,
        pub pad: u32,
        pub dropped: u64,
        pub reserved: [u64; 2],
    }
}

abi_struct! {
    rust_wq_stats,
    /// `struct rust_wq_stats` (RUST_WQ_IOC_STATS).
    pub struct RustWqStats {
        pub enqueued: u64,
        pub executed: u64,
        pub cancelled: u64,
        pub pending: u64,
        pub results_dropped: u64,
        pub reserved: [u64; 3],
    }
}

abi_struct! {
    rust_wq_bench,
    /// `struct rust_wq_bench` (RUST_WQ_IOC_BENCH).
    pub struct RustWqBench {
        pub version: u32,
        pub path: u32,
        pub threads: u32,
        pub items: u32,
        pub flags: u32,
        pub threads_run: u32,
        pub elapsed_ns: u64,
        pub items_per_sec: u64,
        pub queue_p50_ns: u64,
        pub queue_p90_ns: u64,
        pub queue_p95_ns: u64,
        pub start_p50_ns: u64,
        pub start_p90_ns: u64,
        pub start_p95_ns: u64,
        pub op: u32,
        pub pad: u32,
        pub queue_p99_ns: u64,
        pub reserved: [u64; 2],
    }
}

/// Every struct of the ABI.
pub const ALL_STRUCTS: [StructLayout; 8] = [
    RustWqInfo::LAYOUT,
    RustWqEnqueue::LAYOUT,
    RustWqTarget::LAYOUT,
    RustWqModDelay::LAYOUT,
    RustWqResult::LAYOUT,
    RustWqResults::LAYOUT,
    RustWqStats::LAYOUT,
    RustWqBench::LAYOUT,
];
