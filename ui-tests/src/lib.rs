//! trybuild cases for the athyper macros live in `pass/` and `fail/`; `tests/ui.rs` runs them.
