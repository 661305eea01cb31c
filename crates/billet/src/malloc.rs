//! Memory allocator tuning for the long-running server.
//!
//! glibc's malloc gives each thread that contends for it an arena of its
//! own (up to 8 per core) and keeps what those arenas free. Measured under
//! 64 connections of 4 KiB PUT and GET: ~108 MiB RSS for ~41 MiB of live
//! heap with the default, ~64 MiB with two arenas and the same throughput
//! (mimalloc, tried instead, peaked at ~148 MiB).
//!
//! glibc also raises its mmap threshold each time a large mmapped block is
//! freed (up to 32 MiB), and its trim threshold with it. After the server
//! has freed a few 1 MiB chunk buffers, every later buffer up to 32 MiB
//! (hash-map growth of the hot block locations, run builds and merges)
//! comes from an arena and, once freed, stays in the process. Both
//! thresholds are fixed just above the 1 MiB chunk buffers (1 MiB +
//! 64 KiB): those stay in the arenas (mmapping each one, with thresholds
//! at exactly 1 MiB, cost a third more CPU per PUT), larger buffers go back
//! to the kernel when freed. Measured after 3.7 M PUTs of 4 KiB at c=64
//! (10 M blocks), RSS 10 s after the load: 160 MiB with glibc's dynamic
//! thresholds, 150 MiB with both at 4 MiB, 141 MiB at 1 MiB + 64 KiB, the
//! server's CPU per PUT unchanged (174 against 192 µs, within noise).
//!
//! These can only be set before the first allocation, through
//! `GLIBC_TUNABLES`, so the server re-executes itself once with them set.
//! (`mallopt` would do it in process, but the workspace forbids `unsafe`.)

/// The tunables the server runs with.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TUNABLES: [(&str, &str); 3] = [
    ("glibc.malloc.arena_max", "2"),
    ("glibc.malloc.mmap_threshold", "1114112"),
    ("glibc.malloc.trim_threshold", "1114112"),
];

/// Re-executes the process with [`TUNABLES`] unless `GLIBC_TUNABLES`
/// already names them (an operator's own setting wins). Returns only if
/// nothing needed doing or the re-exec failed (the server then runs with
/// glibc's defaults).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    use std::os::unix::process::CommandExt;

    let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let missing: Vec<String> = TUNABLES
        .iter()
        .filter(|(name, _)| !current.contains(name))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    // The re-executed process finds all of them set and returns here.
    if missing.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let tunables = std::iter::once(current.as_str())
        .filter(|c| !c.is_empty())
        .chain(missing.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(":");
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    let err = cmd.args(args).env("GLIBC_TUNABLES", &tunables).exec();
    eprintln!(
        "billet: could not re-execute with GLIBC_TUNABLES={tunables} ({err}); using malloc defaults"
    );
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}
