//! The arguments of ENQUEUE, FLUSH and CANCEL, as Rust values ([`EnqueueArgs`], [`Target`]).

use crate::abi::*;

/// Which items a FLUSH or CANCEL applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// All of this file's items (RUST_WQ_TARGET_ALL).
    All,
    /// The item with this id (RUST_WQ_TARGET_ID).
    Id(u64),
    /// All of this file's items on this queue (RUST_WQ_TARGET_QUEUE).
    Queue(u32),
}

impl Target {
    /// The ioctl argument for this target.
    pub fn to_raw(self) -> RustWqTarget {
        let mut t = RustWqTarget {
            version: RUST_WQ_ABI_VERSION,
            ..Default::default()
        };
        match self {
            Target::All => t.kind = RUST_WQ_TARGET_ALL,
            Target::Id(id) => {
                t.kind = RUST_WQ_TARGET_ID;
                t.id = id;
            }
            Target::Queue(q) => {
                t.kind = RUST_WQ_TARGET_QUEUE;
                t.queue = q;
            }
        }
        t
    }
}

/// Parameters of one ENQUEUE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnqueueArgs {
    /// The target queue, RUST_WQ_Q_*.
    pub queue: u32,
    /// A CPU number, or RUST_WQ_CPU_ANY.
    pub cpu: u32,
    /// How many items (1 .. RUST_WQ_MAX_COUNT).
    pub count: u32,
    /// A value of the caller's, reported back in each result.
    pub tag: u64,
    /// Delay before each item runs, in microseconds (0: queued at once).
    pub delay_us: u64,
    /// How long each item sleeps when it runs, in microseconds.
    pub sleep_us: u64,
    /// Queue from a hard-IRQ handler (RUST_WQ_ENQ_F_FROM_IRQ).
    pub from_irq: bool,
    /// Queue from softirq context (RUST_WQ_ENQ_F_FROM_SOFTIRQ).
    pub from_softirq: bool,
    /// Queue from the edu device's interrupt handler (RUST_WQ_ENQ_F_FROM_DEVICE_IRQ).
    pub from_device_irq: bool,
}

impl Default for EnqueueArgs {
    fn default() -> Self {
        EnqueueArgs {
            queue: RUST_WQ_Q_PERCPU,
            cpu: RUST_WQ_CPU_ANY,
            count: 1,
            tag: 0,
            delay_us: 0,
            sleep_us: 0,
            from_irq: false,
            from_softirq: false,
            from_device_irq: false,
        }
    }
}

/// Builder methods that set one field each: `fn field(self, value) -> Self`.
macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty),+ $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, $field: $ty) -> Self {
                self.$field = $field;
                self
            }
        )+
    };
}

impl EnqueueArgs {
    /// `count` items on `queue`, any CPU, no delay, no sleep, tag 0.
    pub fn new(queue: u32, count: u32) -> Self {
        EnqueueArgs {
            queue,
            count,
            ..Default::default()
        }
    }

    setters!(
        /// Sets [`EnqueueArgs::cpu`].
        cpu: u32,
        /// Sets [`EnqueueArgs::delay_us`].
        delay_us: u64,
        /// Sets [`EnqueueArgs::sleep_us`].
        sleep_us: u64,
        /// Sets [`EnqueueArgs::tag`].
        tag: u64,
        /// Sets [`EnqueueArgs::from_irq`].
        from_irq: bool,
        /// Sets [`EnqueueArgs::from_softirq`].
        from_softirq: bool,
        /// Sets [`EnqueueArgs::from_device_irq`].
        from_device_irq: bool,
    );

    /// The ioctl argument for these parameters.
    pub fn to_raw(self) -> RustWqEnqueue {
        RustWqEnqueue {
            version: RUST_WQ_ABI_VERSION,
            queue: self.queue,
            cpu: self.cpu,
            count: self.count,
            delay_us: self.delay_us,
            sleep_us: self.sleep_us,
            tag: self.tag,
            flags: if self.from_irq {
                RUST_WQ_ENQ_F_FROM_IRQ
            } else {
                0
            } | if self.from_softirq {
                RUST_WQ_ENQ_F_FROM_SOFTIRQ
            } else {
                0
            } | if self.from_device_irq {
                RUST_WQ_ENQ_F_FROM_DEVICE_IRQ
            } else {
                0
            },
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_encoding() {
        let t = Target::Id(7).to_raw();
        assert_eq!(
            (t.version, t.kind, t.id, t.queue),
            (1, RUST_WQ_TARGET_ID, 7, 0)
        );
        let t = Target::Queue(RUST_WQ_Q_ORDERED).to_raw();
        assert_eq!(
            (t.kind, t.queue, t.id),
            (RUST_WQ_TARGET_QUEUE, RUST_WQ_Q_ORDERED, 0)
        );
        assert_eq!(Target::All.to_raw().kind, RUST_WQ_TARGET_ALL);
    }

    #[test]
    fn enqueue_encoding() {
        let e = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 3)
            .cpu(2)
            .delay_us(5)
            .sleep_us(6)
            .tag(9)
            .to_raw();
        assert_eq!(e.version, RUST_WQ_ABI_VERSION);
        assert_eq!(
            (e.queue, e.cpu, e.count, e.delay_us, e.sleep_us, e.tag),
            (1, 2, 3, 5, 6, 9)
        );
        assert_eq!((e.first_id, e.flags, e.reserved), (0, 0, [0]));
        let e = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 3)
            .from_irq(true)
            .to_raw();
        assert_eq!(e.flags, RUST_WQ_ENQ_F_FROM_IRQ);
        let e = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 3)
            .from_softirq(true)
            .to_raw();
        assert_eq!(e.flags, RUST_WQ_ENQ_F_FROM_SOFTIRQ);
        let e = EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 3)
            .from_device_irq(true)
            .to_raw();
        assert_eq!(e.flags, RUST_WQ_ENQ_F_FROM_DEVICE_IRQ);
        assert_eq!(EnqueueArgs::default().cpu, RUST_WQ_CPU_ANY);
    }
}
