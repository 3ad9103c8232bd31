//! Fuzz target `ws_frames`: see `checks::ws_frames` for what is checked.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::ws_frames(data));
