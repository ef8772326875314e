//! Scheduling priority of authd's background threads. Request handling
//! runs at the process's own priority; the store's writer thread runs five
//! nice steps below it and the password hashing threads ten, so where they
//! share a core a session check waits microseconds for it, not a scheduler
//! slice of background work. Linux schedules threads individually; elsewhere
//! this does nothing.

/// The calling thread's nice value (`None` off Linux).
pub fn current_thread_nice() -> Option<i32> {
    #[cfg(target_os = "linux")]
    return this_thread().map(nice_of);
    #[cfg(not(target_os = "linux"))]
    None
}

/// Lowers the calling thread's scheduling priority to `steps` nice steps
/// below what it had (inherited from the thread that spawned it), capped
/// at 19.
pub fn lower_current_thread(steps: i32) {
    #[cfg(target_os = "linux")]
    {
        let Some(tid) = this_thread() else { return };
        let nice = nice_of(tid).saturating_add(steps).min(19);
        // SAFETY: no memory-safety preconditions; on Linux PRIO_PROCESS with
        // a thread id (never 0 here, which would mean the whole process)
        // affects only that thread.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } != 0 {
            tracing::debug!("could not lower a background thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = steps;
}

/// The calling thread's id.
#[cfg(target_os = "linux")]
fn this_thread() -> Option<libc::id_t> {
    // SAFETY: gettid has no preconditions.
    libc::id_t::try_from(unsafe { libc::gettid() }).ok()
}

/// A thread's nice value.
#[cfg(target_os = "linux")]
fn nice_of(tid: libc::id_t) -> i32 {
    // SAFETY: no memory-safety preconditions; on Linux PRIO_PROCESS with a
    // thread id reads that thread's value alone.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) }
}
