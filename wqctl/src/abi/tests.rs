//! The Rust mirror against the C header, and the helpers' known values.

use super::*;
use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

/// (C struct name, C field name, Rust offset, Rust size) for every struct
/// (field name empty, offset 0, the struct's size) and every field.
fn rust_layouts() -> Vec<(&'static str, &'static str, usize, usize)> {
    let mut v = Vec::new();
    for s in ALL_STRUCTS {
        v.push((s.c_name, "", 0, s.size));
        for f in s.fields {
            v.push((s.c_name, f.name, f.offset, f.size));
        }
    }
    v
}

#[test]
fn layout_lists_every_field_in_order() {
    let names: Vec<&str> = RustWqTarget::LAYOUT.fields.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        ["version", "kind", "queue", "pad", "id", "count", "reserved"]
    );
    assert_eq!(RustWqBench::LAYOUT.fields.len(), 18);
    assert_eq!(RustWqInfo::LAYOUT.c_name, "rust_wq_info");
    for s in ALL_STRUCTS {
        for w in s.fields.windows(2) {
            assert_eq!(w[0].offset + w[0].size, w[1].offset, "{}", s.c_name);
        }
        let last = s.fields[s.fields.len() - 1];
        assert_eq!(last.offset + last.size, s.size, "{}", s.c_name);
    }
    assert_eq!(
        crate::abi_field!(RustWqEnqueue, first_id),
        RustWqEnqueue::LAYOUT.fields[7]
    );
    assert_eq!(
        crate::abi_field!(RustWqBench, reserved),
        Field {
            name: "reserved",
            offset: offset_of!(RustWqBench, reserved),
            size: 16
        }
    );
}

#[test]
fn field_words_split_arrays() {
    let w: Vec<(usize, usize)> = crate::abi_field!(RustWqBench, reserved)
        .words()
        .map(|f| (f.offset, f.size))
        .collect();
    assert_eq!(w, [(104, 8), (112, 8)]);
    let w: Vec<(usize, usize)> = crate::abi_field!(RustWqResults, count)
        .words()
        .map(|f| (f.offset, f.size))
        .collect();
    assert_eq!(w, [(16, 4)]);
}

/// The C names of the operation numbers, in ABI order (checked against the header).
const BENCH_OP_CONSTS: [&str; 16] = [
    "RUST_WQ_BENCH_OP_RT",
    "RUST_WQ_BENCH_OP_QUEUE",
    "RUST_WQ_BENCH_OP_QUEUE_FRESH",
    "RUST_WQ_BENCH_OP_QUEUE_ON",
    "RUST_WQ_BENCH_OP_DELAYED",
    "RUST_WQ_BENCH_OP_MOD_DELAYED",
    "RUST_WQ_BENCH_OP_CANCEL_IDLE",
    "RUST_WQ_BENCH_OP_CANCEL_ARMED",
    "RUST_WQ_BENCH_OP_CANCEL_SYNC_IDLE",
    "RUST_WQ_BENCH_OP_CANCEL_SYNC_ARMED",
    "RUST_WQ_BENCH_OP_FLUSH_IDLE",
    "RUST_WQ_BENCH_OP_DISABLE",
    "RUST_WQ_BENCH_OP_ENABLE",
    "RUST_WQ_BENCH_OP_STATIC",
    "RUST_WQ_BENCH_OP_DELAYED_PAR",
    "RUST_WQ_BENCH_OP_DROP_ARMED",
];

#[test]
fn bench_op_names() {
    assert_eq!(bench_op_name(RUST_WQ_BENCH_OP_RT), Some("rt"));
    assert_eq!(bench_op_name(RUST_WQ_BENCH_OP_STATIC), Some("static"));
    assert_eq!(bench_op_name(RUST_WQ_BENCH_OP_COUNT), None);
    for (i, (_, n)) in BENCH_OPS.iter().enumerate() {
        assert_eq!(*n, i as u32);
    }
}

/// `(name, value)` of each constant, the name as written.
macro_rules! named {
    ($($c:ident),+ $(,)?) => {
        vec![$((stringify!($c), u64::from($c))),+]
    };
}

fn rust_constants() -> Vec<(&'static str, u64)> {
    let mut v: Vec<(&'static str, u64)> = named![
        RUST_WQ_ABI_VERSION,
        RUST_WQ_IOC_MAGIC,
        RUST_WQ_MAX_COUNT,
        RUST_WQ_MAX_PENDING,
        RUST_WQ_MAX_DELAY_US,
        RUST_WQ_MAX_SLEEP_US,
        RUST_WQ_MAX_RESULTS,
        RUST_WQ_Q_PERCPU,
        RUST_WQ_Q_UNBOUND,
        RUST_WQ_Q_ORDERED,
        RUST_WQ_Q_SYSTEM_PERCPU,
        RUST_WQ_Q_SYSTEM_DFL,
        RUST_WQ_Q_COUNT,
        RUST_WQ_CPU_ANY,
        RUST_WQ_TARGET_ALL,
        RUST_WQ_TARGET_ID,
        RUST_WQ_TARGET_QUEUE,
        RUST_WQ_RES_PROCESS_CTX,
        RUST_WQ_RES_SLEPT,
        RUST_WQ_RES_FROM_TASK,
        RUST_WQ_RES_FROM_SOFTIRQ,
        RUST_WQ_RES_FROM_HARDIRQ,
        RUST_WQ_RES_FROM_DEVICE_IRQ,
        RUST_WQ_INFO_DEVICE_BOUND,
        RUST_WQ_INFO_DEVICE_MSI,
        RUST_WQ_ENQ_F_FROM_IRQ,
        RUST_WQ_ENQ_F_FROM_SOFTIRQ,
        RUST_WQ_ENQ_F_FROM_DEVICE_IRQ,
        RUST_WQ_ENQ_F_ALL,
        RUST_WQ_IRQ_BATCH,
        RUST_WQ_BENCH_UNBOUND_SYSFS,
        RUST_WQ_BENCH_PERCPU,
        RUST_WQ_BENCH_SYSTEM_PERCPU,
        RUST_WQ_BENCH_F_START_LATENCY,
        RUST_WQ_BENCH_F_UPSTREAM,
        RUST_WQ_BENCH_F_KBOX,
        RUST_WQ_BENCH_MAX_ITEMS,
        RUST_WQ_BENCH_DROP_ROUNDS,
        RUST_WQ_BENCH_DROP_MAX_ITEMS,
        RUST_WQ_BENCH_MAX_TOTAL,
        RUST_WQ_BENCH_OP_COUNT,
        RUST_WQ_IOC_BENCH,
    ];
    for (name, nr) in ALL_IOCTLS {
        v.push((name, nr.into()));
    }
    for (i, name) in BENCH_OP_CONSTS.iter().enumerate() {
        v.push((name, i as u64));
    }
    v
}

/// Writes, compiles and runs a C program that prints what the header says.
/// Output lines: `size <struct> <n>`, `field <struct> <field> <offset> <size>`,
/// `const <NAME> <value>`, and `device <string>`.
fn c_header_facts() -> BTreeMap<String, String> {
    let include = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../include");
    assert!(
        include.join("rust_wq.h").exists(),
        "{} not found: the crate must live next to include/",
        include.join("rust_wq.h").display()
    );
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"rust_wq.h\"\n\
         #define FSIZE(s, f) sizeof(((struct s *)0)->f)\nint main(void) {\n",
    );
    for (s, f, _, _) in rust_layouts() {
        if f.is_empty() {
            c += &format!("printf(\"size {s} %zu\\n\", sizeof(struct {s}));\n");
        } else {
            c += &format!(
                "printf(\"field {s} {f} %zu %zu\\n\", offsetof(struct {s}, {f}), FSIZE({s}, {f}));\n"
            );
        }
    }
    for (name, _) in rust_constants() {
        c += &format!("printf(\"const {name} %llu\\n\", (unsigned long long)({name}));\n");
    }
    c += "printf(\"device %s\\n\", RUST_WQ_DEVICE);\nreturn 0;\n}\n";

    let dir = std::env::temp_dir().join(format!("wqctl-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("abi_facts.c");
    let exe = dir.join("abi_facts");
    std::fs::write(&src, c).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .arg("-std=c11")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(&include)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the C compiler `{cc}`: {e}\n\
                 install it (Debian/Ubuntu: `apt-get install gcc linux-libc-dev`) or set CC"
            )
        });
    assert!(
        out.status.success(),
        "compiling {} against {}/rust_wq.h failed:\n{}\n\
         hint: <linux/ioctl.h> and <linux/types.h> come from the `linux-libc-dev` package \
         (`apt-get install linux-libc-dev`)",
        src.display(),
        include.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe)
        .output()
        .expect("running the compiled C program");
    assert!(run.status.success());
    let _ = std::fs::remove_dir_all(&dir);
    let mut facts = BTreeMap::new();
    for line in String::from_utf8(run.stdout).unwrap().lines() {
        let mut parts = line.split_whitespace();
        let kind = parts.next().unwrap();
        let rest: Vec<&str> = parts.collect();
        match kind {
            "size" => {
                facts.insert(format!("size {}", rest[0]), rest[1].to_string());
            }
            "field" => {
                facts.insert(
                    format!("offset {}.{}", rest[0], rest[1]),
                    rest[2].to_string(),
                );
                facts.insert(
                    format!("fsize {}.{}", rest[0], rest[1]),
                    rest[3].to_string(),
                );
            }
            "const" => {
                facts.insert(format!("const {}", rest[0]), rest[1].to_string());
            }
            "device" => {
                facts.insert("device".into(), rest[0].to_string());
            }
            _ => panic!("unexpected line {line:?}"),
        }
    }
    facts
}

#[test]
fn layouts_constants_and_ioctl_numbers_match_c_header() {
    let facts = c_header_facts();
    let mut mismatches = Vec::new();
    let mut check = |key: String, rust: String| match facts.get(&key) {
        Some(c) if *c == rust => {}
        Some(c) => mismatches.push(format!("{key}: C says {c}, Rust says {rust}")),
        None => mismatches.push(format!("{key}: missing from the C output")),
    };
    let layouts = rust_layouts();
    for (s, f, off, size) in &layouts {
        if f.is_empty() {
            check(format!("size {s}"), size.to_string());
        } else {
            check(format!("offset {s}.{f}"), off.to_string());
            check(format!("fsize {s}.{f}"), size.to_string());
        }
    }
    for (name, val) in rust_constants() {
        check(format!("const {name}"), val.to_string());
    }
    check("device".into(), RUST_WQ_DEVICE.to_string());
    assert!(
        mismatches.is_empty(),
        "ABI mismatches:\n{}",
        mismatches.join("\n")
    );
    // Every struct is fully covered by its fields (no hidden padding).
    for (s, f, _, size) in &layouts {
        if f.is_empty() {
            let sum: usize = layouts
                .iter()
                .filter(|(s2, f2, _, _)| s2 == s && !f2.is_empty())
                .map(|(_, _, _, sz)| sz)
                .sum();
            assert_eq!(sum, *size, "struct {s} has implicit padding");
        }
    }
}

#[test]
fn ioctl_encoding_matches_known_values() {
    // _IOR('T', 0x13, int) == TIOCGWINSZ-like sanity: _IOR(0x54, 0x13, 4)
    assert_eq!(ior::<u32>(0x54, 0x13), 0x8004_5413);
    assert_eq!(io(0x54, 0x13), 0x5413);
    assert_eq!(iow::<u64>(0xBC, 4), 0x4008_BC04);
    assert_eq!(iowr::<[u8; 64]>(0xBC, 1), 0xC040_BC01);
    assert_eq!(ioc_type(RUST_WQ_IOC_ENQUEUE), RUST_WQ_IOC_MAGIC);
    assert_eq!(ioc_nr(RUST_WQ_IOC_STATS), 6);
    assert_eq!(ioc_size(RUST_WQ_IOC_INFO), size_of::<RustWqInfo>());
    assert_eq!(ioc_dir(RUST_WQ_IOC_MOD_DELAY), IOC_WRITE);
    assert_eq!(ioc_dir(RUST_WQ_IOC_RESET), IOC_NONE);
    assert_eq!(ioc_nr(RUST_WQ_IOC_BENCH), 8);
    assert_eq!(ioc_dir(RUST_WQ_IOC_BENCH), IOC_READ | IOC_WRITE);
    assert_eq!(ioc_size(RUST_WQ_IOC_BENCH), size_of::<RustWqBench>());
    assert_eq!(size_of::<RustWqBench>(), 120);
}

#[test]
fn bench_path_names() {
    assert_eq!(
        bench_path_name(RUST_WQ_BENCH_UNBOUND_SYSFS),
        Some("unbound-sysfs")
    );
    assert_eq!(
        bench_path_name(RUST_WQ_BENCH_SYSTEM_PERCPU),
        Some("system-percpu")
    );
    assert_eq!(bench_path_name(3), None);
}

#[test]
fn queue_names() {
    assert_eq!(queue_name(RUST_WQ_Q_SYSTEM_DFL), Some("system-dfl"));
    assert_eq!(queue_name(RUST_WQ_Q_COUNT), None);
}
