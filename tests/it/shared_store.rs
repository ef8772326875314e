//! Issue 8: the shared store (Redis/Valkey). Tests being written.
