//! Fuzz target `join_payload`: see `checks::join_payload` for what is checked.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::join_payload(data));
