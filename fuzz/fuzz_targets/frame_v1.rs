//! Fuzz target `frame_v1`: see `checks::frame_v1` for what is checked.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::frame_v1(data));
