//! jemalloc as the daemon's allocator (the `jemalloc` feature, on by default).
//!
//! An initial sync or a large write holds a few hundred bytes per row for a moment (the rows
//! read, the plan, the request bodies) and then lets them go. glibc's malloc keeps most of
//! what was freed: measured with `benches/memory.sh`, the daemon stayed at about 6.9 KB
//! resident per row after the sync, where about 1 KB per row is still in use. jemalloc
//! returns freed pages to the system from a background thread about a second after they
//! fall idle, so the resident memory follows what is in use.

use std::ffi::c_char;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The options jemalloc reads before `main` (its `malloc_conf`): purge from a background
/// thread, dirty pages after 1 s idle, and hand them straight back (no lazy `MADV_FREE`
/// stage, whose pages would still count as resident). `_RJEM_MALLOC_CONF` can override them.
#[allow(unsafe_code)] // jemalloc looks this symbol up by name; it is a constant string
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: Option<&'static c_char> = Some(
    // SAFETY: the pointer comes from a `'static` C string literal, so it is valid forever.
    unsafe { &*c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr() },
);

/// What the allocator holds: bytes in live allocations, and bytes of the pages it keeps
/// resident for them (live bytes, the free space between them, and its own metadata). The
/// difference is the cost of fragmentation.
#[derive(Debug, Clone, Copy)]
pub struct Heap {
    /// Bytes the daemon has allocated and not freed.
    pub allocated: u64,
    /// Bytes in the allocator's resident pages.
    pub resident: u64,
}

/// The allocator's figures as of now, or `None` if it cannot give them.
pub fn heap() -> Option<Heap> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The statistics are a snapshot that advancing the epoch refreshes.
    epoch::advance().ok()?;
    Some(Heap {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::{Duration, Instant};

    fn resident_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .expect("VmRSS");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn memory_freed_among_live_allocations_goes_back_to_the_system() {
        // Measured in a process of its own: under `cargo test` the binary's other tests
        // allocate and free beside it, and the process's resident size is theirs too.
        const INNER: &str = "alloc::tests::freed_memory_goes_back_in_this_process";
        let exe = std::env::current_exe().expect("the test binary");
        let out = std::process::Command::new(exe)
            .args(["--exact", INNER, "--ignored", "--test-threads=1"])
            .output()
            .expect("the test binary runs");
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && log.contains("1 passed"), "{log}");
    }

    #[test]
    fn the_heap_figures_follow_a_large_allocation() {
        // Other tests allocate and free beside this one: only what this one holds is sure.
        // The figures are read once before, so the second reading must be a fresh one.
        super::heap().expect("jemalloc's statistics");
        let block = vec![1u8; 64 << 20];
        let during = super::heap().expect("jemalloc's statistics");
        assert!(during.allocated >= 64 << 20, "{during:?}");
        assert!(during.resident >= during.allocated, "{during:?}");
        drop(block);
    }

    #[test]
    #[ignore = "run in a process of its own by memory_freed_among_live_allocations_goes_back_to_the_system"]
    fn freed_memory_goes_back_in_this_process() {
        // 256 MB in 1 KB rows, then all but one row in 256 freed: the freed memory lies
        // between live allocations, where glibc keeps it resident (it gave back nothing
        // when tried).
        let mut rows: Vec<Vec<u8>> = (0..256 * 1024).map(|i| vec![i as u8; 1024]).collect();
        let before = resident_kb();
        let mut i = 0;
        rows.retain(|_| {
            i += 1;
            i % 256 == 0
        });
        rows.shrink_to_fit();
        let deadline = Instant::now() + Duration::from_secs(10);
        while resident_kb() + 200 * 1024 > before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let after = resident_kb();
        assert!(
            after + 200 * 1024 <= before,
            "resident {before} kB with the rows, still {after} kB after freeing 255 of 256"
        );
        assert_eq!(rows.len(), 1024);
    }
}
