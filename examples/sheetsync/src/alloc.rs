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
        // 256 MB in 1 KB rows, then all but one row in 256 freed: the freed memory lies
        // between live allocations, where glibc keeps it resident (it gave back nothing
        // when tried). Half of it must go back: other tests of this binary may allocate
        // meanwhile when they share the process (`cargo test`).
        let mut rows: Vec<Vec<u8>> = (0..256 * 1024).map(|i| vec![i as u8; 1024]).collect();
        let before = resident_kb();
        let mut i = 0;
        rows.retain(|_| {
            i += 1;
            i % 256 == 0
        });
        rows.shrink_to_fit();
        let deadline = Instant::now() + Duration::from_secs(10);
        while resident_kb() + 128 * 1024 > before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let after = resident_kb();
        assert!(
            after + 128 * 1024 <= before,
            "resident {before} kB with the rows, still {after} kB after freeing 255 of 256"
        );
        assert_eq!(rows.len(), 1024);
    }
}
