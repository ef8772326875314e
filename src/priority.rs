//! Scheduling priority of authd's background threads. Request handling
//! runs at the process's own priority; the store's writer thread runs five
//! nice steps below it and the password hashing threads ten, so where they
//! share a core a session check waits microseconds for it, not a scheduler
//! slice of background work. Linux schedules threads individually; elsewhere
//! this does nothing.

/// Lowers the calling thread's scheduling priority to `steps` nice steps
/// below what it had (inherited from the thread that spawned it), capped
/// at 19.
pub fn lower_current_thread(steps: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions.
        let Ok(tid) = libc::id_t::try_from(unsafe { libc::gettid() }) else { return };
        // SAFETY: no memory-safety preconditions; on Linux PRIO_PROCESS with
        // a thread id (never 0 here, which would mean the whole process)
        // affects only that thread.
        let rc = unsafe {
            let own = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, own.saturating_add(steps).min(19))
        };
        if rc != 0 {
            tracing::debug!("could not lower a background thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = steps;
}
