//! The edu device's binding, seen through sysfs: unbinding and rebinding it,
//! and a second device refused.

use super::*;

/// The PCI address of the bound edu device (the link in the driver's directory).
pub(crate) fn bound_address() -> Result<String, Outcome> {
    let dir = io(std::fs::read_dir(DRIVER_DIR), &format!("read {DRIVER_DIR}"))?;
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // 0000:00:04.0
        if name.len() == 12 && name.as_bytes()[4] == b':' && name.as_bytes()[10] == b'.' {
            return Ok(name);
        }
    }
    fail(format!("{DRIVER_DIR} lists no bound device"))
}

/// Writes `addr` to the driver's `bind` or `unbind` file.
pub(crate) fn sysfs_write(what: &str, addr: &str) -> Result<(), Outcome> {
    io(
        std::fs::write(format!("{DRIVER_DIR}/{what}"), addr),
        &format!("write {addr} to {DRIVER_DIR}/{what}"),
    )
}

/// Unbinding the device through sysfs while calls raise its interrupt and
/// items are queued: every accepted item runs exactly once, every refused call
/// (ENODEV) leaves nothing behind, the flag then gives ENODEV and INFO says no
/// device; binding it again gives a working device.
pub(super) fn device_irq_unbind_rebind(ctx: &Ctx) -> TestResult {
    let mut c = Checker::new();
    let probe = ctx.open()?;
    bound_device(&probe)?;
    let addr = bound_address()?;
    let stop = AtomicBool::new(false);
    let accepted = AtomicU64::new(0);
    let refused = AtomicU64::new(0);
    let mut failures = Vec::new();
    std::thread::scope(|s| -> Result<(), Outcome> {
        let mut workers = Vec::new();
        for t in 0..3u32 {
            let (stop, accepted, refused) = (&stop, &accepted, &refused);
            let dev = ctx.open()?;
            workers.push(s.spawn(move || -> Result<Device, String> {
                let mut k = 0u64;
                let give_up = Instant::now() + Duration::from_secs(30);
                // Until stopped, and then until a call was refused (the unbind is seen).
                while !stop.load(Ordering::Relaxed)
                    || (refused.load(Ordering::Relaxed) == 0 && Instant::now() < give_up)
                {
                    let q = ALL_QUEUES[(k as usize + t as usize) % ALL_QUEUES.len()];
                    let a = EnqueueArgs::new(q, 1 + (k % 3) as u32)
                        .delay_us(if k.is_multiple_of(2) { 0 } else { 2_000 })
                        .tag(k)
                        .from_device_irq(true);
                    match dev.enqueue(a) {
                        Ok(_) => {
                            accepted.fetch_add(u64::from(a.count), Ordering::Relaxed);
                        }
                        Err(e) if e.0 == ENODEV => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                        }
                        Err(e) => return Err(format!("thread {t}: ENQUEUE: {e:?}")),
                    }
                    k += 1;
                }
                Ok(dev)
            }));
        }
        std::thread::sleep(Duration::from_millis(300));
        let unbound = sysfs_write("unbind", &addr);
        stop.store(true, Ordering::Relaxed);
        let mut devs = Vec::new();
        for w in workers {
            match w.join() {
                Ok(Ok(dev)) => devs.push(dev),
                Ok(Err(e)) => failures.push(e),
                Err(_) => failures.push("a thread panicked".into()),
            }
        }
        unbound?;
        // Every item that was accepted runs once; the refused calls left nothing.
        let mut ran = 0u64;
        let mut enqueued = 0u64;
        for dev in &devs {
            dev.flush(Target::All).must("FLUSH ALL")?;
            let by_id = results(&mut c, dev)?;
            for r in by_id.values() {
                c.check(r.flags & MASK & !RUST_WQ_RES_SLEPT == FROM_DEVICE, || {
                    format!("id {}: flags {}", r.id, format_flags(r.flags))
                });
            }
            ran += by_id.len() as u64;
            let st = dev.stats().must("STATS")?;
            c.eq("pending after FLUSH", st.pending, 0);
            enqueued += st.enqueued;
        }
        let acc = accepted.load(Ordering::Relaxed);
        c.eq("results = items of accepted calls", ran, acc);
        c.eq("STATS enqueued = items of accepted calls", enqueued, acc);
        crate::diag(&format!(
            "{acc} items accepted and run, {} calls refused with ENODEV during the unbind",
            refused.load(Ordering::Relaxed)
        ));
        Ok(())
    })?;
    for f in failures {
        c.fail(f);
    }
    // Unbound: the flag is ENODEV and changes nothing; INFO says so.
    let dev = ctx.open()?;
    let i = dev.info().must("INFO")?;
    c.eq("device_flags after unbind", i.device_flags, 0);
    c.eq("device_irq after unbind", i.device_irq, 0);
    for q in ALL_QUEUES {
        c.errno(
            &format!(
                "ENQUEUE on {} from the device IRQ, unbound",
                format_queue(q)
            ),
            dev.enqueue(EnqueueArgs::new(q, 2).from_device_irq(true)),
            ENODEV,
        );
    }
    c.stats("nothing enqueued while unbound", &dev, (0, 0, 0, 0));
    c.check(
        !std::path::Path::new(&format!("{DRIVER_DIR}/{addr}")).exists(),
        || format!("{DRIVER_DIR}/{addr} still exists after unbind"),
    );
    // Bind again: a new IRQ line and the flag works.
    sysfs_write("bind", &addr)?;
    let before = Counts::now(&dev)?;
    let set = enq(
        &dev,
        EnqueueArgs::new(RUST_WQ_Q_PERCPU, 3),
        "ENQUEUE 3 from the device IRQ after rebinding",
    )?;
    dev.flush(Target::All).must("FLUSH ALL")?;
    let by_id = results(&mut c, &dev)?;
    check_items(&mut c, &by_id, set, RUST_WQ_Q_PERCPU, false, None);
    before.check_raised(&mut c, &dev, 1)?;
    c.done()
}

/// The device is driven alone: a second edu device (scripts/vm.sh adds two)
/// is refused at probe with EBUSY.  Seen from outside the module: in sysfs,
/// exactly one device of vendor 0x1234, device 0x11e8 has the driver
/// rust_wq_edu and the other has none; binding the other by hand through the
/// driver's `bind` file fails with EBUSY (the driver core's errno from the
/// probe) and leaves the first bound, with the same IRQ.
pub(super) fn second_edu_refused_ebusy(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut c = Checker::new();
    let (irq, _) = bound_device(&dev)?;
    let dir = io(
        std::fs::read_dir("/sys/bus/pci/devices"),
        "read /sys/bus/pci/devices",
    )?;
    let mut edus = Vec::new();
    for e in dir.flatten() {
        let p = e.path();
        let id = |f: &str| std::fs::read_to_string(p.join(f)).map(|s| s.trim().to_string());
        if id("vendor").ok().as_deref() == Some("0x1234")
            && id("device").ok().as_deref() == Some("0x11e8")
        {
            let driver = std::fs::read_link(p.join("driver"))
                .ok()
                .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()));
            edus.push((e.file_name().to_string_lossy().into_owned(), driver));
        }
    }
    edus.sort();
    if edus.len() < 2 {
        return fail(format!(
            "{} edu devices in /sys/bus/pci/devices ({edus:?}): scripts/vm.sh adds two",
            edus.len()
        ));
    }
    let bound: Vec<_> = edus
        .iter()
        .filter(|(_, d)| d.as_deref() == Some(DRIVER_DIR_NAME))
        .collect();
    c.eq("edu devices bound to rust_wq_edu", bound.len(), 1);
    c.check(
        edus.iter()
            .all(|(_, d)| d.is_none() || d.as_deref() == Some(DRIVER_DIR_NAME)),
        || format!("edu devices and their drivers: {edus:?}"),
    );
    for (addr, _) in edus.iter().filter(|(_, d)| d.is_none()) {
        let r = std::fs::write(format!("{DRIVER_DIR}/bind"), addr);
        c.check(
            matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EBUSY)),
            || format!("write {addr} to {DRIVER_DIR}/bind: {r:?}, expected EBUSY (one device at a time)"),
        );
        c.check(
            !std::path::Path::new(&format!("/sys/bus/pci/devices/{addr}/driver")).exists(),
            || format!("{addr} has a driver after the refused bind"),
        );
    }
    let (irq2, _) = bound_device(&dev)?;
    c.eq("INFO device_irq after the refused bind", irq2, irq);
    c.done()
}
