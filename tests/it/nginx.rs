//! Placeholder; tests follow.
