//! Fuzz target `frame_v2`: see `checks::frame_v2` for what is checked.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::frame_v2(data));
