//! Panics inside the storage engine, contained.
//!
//! redb trusts a cleanly closed file and may panic on one damaged outside
//! it. [`contain`] runs such a call, turns a panic into an error carrying
//! its message, and keeps the panic hook quiet for it: authd reports the
//! damage once, naming the file, instead of a raw "thread panicked" line.
//! A panic during the unwinding of another (which aborts the process, past
//! any `catch_unwind`) gets one line saying the database is damaged.
//! Panics anywhere else still reach the usual hook.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`contain`].
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
    /// Panics seen by the hook in the current [`contain`] call.
    static PANICS: Cell<u32> = const { Cell::new(0) };
    /// The first of them, said if a second one aborts the process.
    static FIRST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Runs `f`; a panic in it is `Err(message)`, with the panic hook silent.
///
/// The caller must not use state that `f` may have left half-changed
/// (hence no `UnwindSafe` bound): the store marks itself damaged instead.
pub fn contain<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    install_hook();
    let outer = CONTAINED.with(|c| c.replace(true));
    let outer_panics = PANICS.with(|c| c.replace(0));
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(outer));
    PANICS.with(|c| c.set(outer_panics));
    result.map_err(|payload| message(payload.as_ref()))
}

/// Wraps the current panic hook, once, so contained panics print nothing.
fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                previous(info);
                return;
            }
            // A second panic before the first is caught (a destructor
            // panicking on the way out) aborts the process past
            // `catch_unwind`: the one chance to say why is here.
            match PANICS.with(|c| c.replace(c.get() + 1)) {
                0 => FIRST.with(|f| *f.borrow_mut() = info.to_string()),
                1 => FIRST.with(|first| {
                    eprintln!(
                        "error: the database engine failed on damaged data ({}) and authd must stop; \
                         the data dir's authd.redb is damaged: restore it from a backup or move it away to start afresh",
                        first.borrow()
                    );
                }),
                _ => {}
            }
        }));
    });
}

/// A panic payload's message (`panic!` carries a `&str` or a `String`).
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_string(),
        (_, Some(s)) => s.clone(),
        _ => "a panic without a message".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_a_value_passes_through() {
        assert_eq!(contain(|| 7), Ok(7));
        let r: Result<(), String> =
            contain(|| panic!("index out of bounds: the len is 1 but the index is 9"));
        assert_eq!(r, Err("index out of bounds: the len is 1 but the index is 9".to_string()));
        let n = 3;
        let r: Result<(), String> = contain(|| panic!("formatted {n}"));
        assert_eq!(r, Err("formatted 3".to_string()));
    }

    #[test]
    fn nesting_restores_the_outer_state() {
        let inner: Result<Result<(), String>, String> = contain(|| contain(|| panic!("inner")));
        assert_eq!(inner, Ok(Err("inner".to_string())));
        assert!(!CONTAINED.with(Cell::get));
    }
}
