//! Fuzz target `auth_header`: see `checks::auth_header` for what is checked.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::auth_header(data));
