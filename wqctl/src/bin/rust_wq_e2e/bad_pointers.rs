//! Bad pointers: EFAULT for every command, a NULL results buffer.

use crate::util::{drain, enq, exactly, one_pending, raw, valid_enqueue, KERNEL_ADDR};
use crate::{Checker, Ctx, Must, TestResult};
use libc::{EFAULT, EINVAL};
use wqctl::abi::*;
use wqctl::testing::{page_size, unmapped_addr, Pages};
use wqctl::{EnqueueArgs, Target};

pub fn bad_pointer_efault(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let dev = ctx.open()?;
    let ps = page_size();
    // A struct that starts 8 bytes before the end of a mapping.
    let mut straddle = Pages::map(2);
    straddle.unmap_last_page();
    let unmapped = unmapped_addr();
    let addrs: [(&str, usize); 4] = [
        ("NULL", 0),
        ("an unmapped page", unmapped),
        ("a kernel address", KERNEL_ADDR),
        (
            "a struct crossing into an unmapped page",
            straddle.addr(ps - 8),
        ),
    ];
    one_pending(&dev)?;
    for (what, addr) in addrs {
        for (name, cmd) in ALL_IOCTLS {
            if cmd == RUST_WQ_IOC_RESET {
                continue;
            }
            if addr == straddle.addr(ps - 8) {
                // Make the readable part as valid as possible.
                let head: [u32; 2] = if cmd == RUST_WQ_IOC_ENQUEUE
                    || cmd == RUST_WQ_IOC_MOD_DELAY
                    || cmd == RUST_WQ_IOC_RESULTS
                {
                    [RUST_WQ_ABI_VERSION, 0]
                } else if cmd == RUST_WQ_IOC_FLUSH || cmd == RUST_WQ_IOC_CANCEL {
                    [RUST_WQ_ABI_VERSION, RUST_WQ_TARGET_ALL]
                } else {
                    [0, 0]
                };
                straddle.write(ps - 8, &head);
            }
            // SAFETY: the address is invalid or (straddle) our own scratch page.
            let r = unsafe { dev.ioctl_addr(cmd, addr) };
            c.errno(&format!("{name} with {what} ({addr:#x})"), r, EFAULT);
        }
    }
    c.stats("nothing enqueued, flushed or cancelled", &dev, (1, 0, 0, 1));

    // Read-only argument: the kernel can read it but cannot write the result back.
    type Fill = Box<dyn Fn(&Pages)>;
    let bench = RustWqBench {
        version: RUST_WQ_ABI_VERSION,
        path: RUST_WQ_BENCH_PERCPU,
        threads: 1,
        items: 1,
        ..Default::default()
    };
    let info_args: [(&str, u32, Fill); 6] = [
        (
            "INFO",
            RUST_WQ_IOC_INFO,
            Box::new(|p: &Pages| p.write(0, &RustWqInfo::default())),
        ),
        (
            "STATS",
            RUST_WQ_IOC_STATS,
            Box::new(|p: &Pages| p.write(0, &RustWqStats::default())),
        ),
        (
            "FLUSH ALL",
            RUST_WQ_IOC_FLUSH,
            Box::new(|p: &Pages| p.write(0, &Target::All.to_raw())),
        ),
        (
            "CANCEL ALL",
            RUST_WQ_IOC_CANCEL,
            Box::new(|p: &Pages| p.write(0, &Target::All.to_raw())),
        ),
        (
            "ENQUEUE",
            RUST_WQ_IOC_ENQUEUE,
            Box::new(|p: &Pages| p.write(0, &valid_enqueue())),
        ),
        (
            "BENCH",
            RUST_WQ_IOC_BENCH,
            Box::new(move |p: &Pages| p.write(0, &bench)),
        ),
    ];
    for (name, cmd, fill) in info_args {
        let dev2 = ctx.open()?;
        let page = Pages::map(1);
        fill(&page);
        page.protect_read_only();
        // SAFETY: our read-only page; the kernel must refuse to write it.
        let r = unsafe { dev2.ioctl_addr(cmd, page.addr(0)) };
        c.errno(&format!("{name} with a read-only argument"), r, EFAULT);
        if cmd == RUST_WQ_IOC_ENQUEUE {
            // The header promises the write-back is checked before anything is enqueued.
            c.stats(
                "ENQUEUE with a read-only argument enqueued nothing",
                &dev2,
                (0, 0, 0, 0),
            );
        }
    }

    // RESULTS consumes nothing on EFAULT: a result is waiting while RESULTS
    // gets a bad buffer, or a read-only argument struct (the count cannot be
    // written back); afterwards the result must still be there.
    let dev3 = ctx.open()?;
    let waiting = enq(&dev3, EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1), "ENQUEUE")?;
    dev3.flush(Target::All).must("FLUSH ALL")?;
    let ro = Pages::map(1);
    ro.protect_read_only();
    for (what, buf) in [
        ("an unmapped page", unmapped_addr()),
        ("a kernel address", KERNEL_ADDR),
        ("a read-only page", ro.addr(0)),
    ] {
        let rs = RustWqResults {
            version: RUST_WQ_ABI_VERSION,
            capacity: 1,
            buf: buf as u64,
            ..Default::default()
        };
        c.errno(
            &format!("RESULTS with buf = {what} ({buf:#x})"),
            raw(&dev3, RUST_WQ_IOC_RESULTS, &rs),
            EFAULT,
        );
    }
    let mut good = [RustWqResult::default(); 4];
    let arg = Pages::map(1);
    arg.write(
        0,
        &RustWqResults {
            version: RUST_WQ_ABI_VERSION,
            capacity: 4,
            buf: good.as_mut_ptr() as u64,
            ..Default::default()
        },
    );
    arg.protect_read_only();
    // SAFETY: a read-only page holding a valid argument whose buffer `good`
    // (4 results) lives across the call.
    let r = unsafe { dev3.ioctl_addr(RUST_WQ_IOC_RESULTS, arg.addr(0)) };
    c.errno(
        "RESULTS with a read-only argument struct (valid buffer)",
        r,
        EFAULT,
    );
    exactly(
        &mut c,
        "the waiting result after RESULTS failed with EFAULT (nothing consumed)",
        &drain(&dev3)?,
        [waiting],
    );
    c.done()
}

pub fn results_null_buf_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let id = enq(&dev, EnqueueArgs::new(RUST_WQ_Q_UNBOUND, 1), "ENQUEUE")?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    for cap in [1u32, 8, u32::MAX] {
        let rs = RustWqResults {
            version: RUST_WQ_ABI_VERSION,
            capacity: cap,
            buf: 0,
            ..Default::default()
        };
        c.errno(
            &format!("RESULTS buf NULL capacity {cap}"),
            raw(&dev, RUST_WQ_IOC_RESULTS, &rs),
            EINVAL,
        );
    }
    let mut rs = RustWqResults {
        version: RUST_WQ_ABI_VERSION,
        capacity: 0,
        buf: 0,
        ..Default::default()
    };
    if c.ok(
        "RESULTS buf NULL capacity 0",
        dev.ioctl_with(RUST_WQ_IOC_RESULTS, &mut rs),
    )
    .is_some()
    {
        c.eq("RESULTS capacity 0: count", rs.count, 0);
    }
    let (res, _) = dev.results(4).must("RESULTS capacity 4")?;
    c.eq(
        "the waiting result is still there, ids",
        res.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![id],
    );
    c.done()
}
