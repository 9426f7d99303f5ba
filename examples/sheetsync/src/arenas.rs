//! A bound on glibc's malloc arenas. glibc gives a thread that finds the arenas busy one of
//! its own, up to eight per core, and each arena keeps the memory it has held: under a steady
//! load on many runtime threads a daemon's resident memory creeps up (issue 17 measured 205 →
//! 392 MB over 180 s at 100,000 rows, and a flat 201 MB with one arena). The daemon starts with
//! [`DEFAULT`] arenas; glibc's own `MALLOC_ARENA_MAX`, when set, is left to decide. With the
//! `jemalloc` feature (`alloc.rs`) Rust's allocations go to jemalloc and glibc serves only the
//! C libraries (SQLite), which the bound still covers.

/// Arenas the daemon allows unless `MALLOC_ARENA_MAX` is set: one per core of a small host.
pub const DEFAULT: i32 = 2;

/// How many arenas to allow, given `MALLOC_ARENA_MAX`'s value: `None` to leave glibc alone
/// (the variable is set to something, and glibc has read it already).
pub fn bound(env: Option<&str>) -> Option<i32> {
    match env {
        Some(v) if !v.trim().is_empty() => None,
        _ => Some(DEFAULT),
    }
}

/// Applies [`bound`] to this process; call it before any thread starts. Returns the bound it
/// set, if any (on other C libraries there is nothing to bound).
pub fn apply() -> Option<i32> {
    let n = bound(std::env::var("MALLOC_ARENA_MAX").ok().as_deref())?;
    set(n).then_some(n)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // one call into glibc, with plain integers
/// Sets the bound; false where the C library refuses it or has none.
pub fn set(n: i32) -> bool {
    // SAFETY: mallopt takes two integers and changes only the allocator's tuning.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
/// Sets the bound; false where the C library refuses it or has none.
pub fn set(_: i32) -> bool {
    false
}
