//! Regression tests for the fuzz targets in `fuzz/`: every input that ever
//! crashed a target is kept and replayed here through the very checks the
//! target runs (`fuzz/checks.rs`), so a fixed crash stays fixed without
//! needing cargo-fuzz or a nightly toolchain.
//!
//! - `fuzz/regressions/<target>/<name>`: crashing inputs (libFuzzer's
//!   `fuzz/artifacts/<target>/crash-*` files, copied here when found);
//! - `fuzz/seeds/<target>/`: the seed corpus, replayed as a smoke test;
//! - the named tests below: crashes found so far, with what they showed.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 6] = [
    ("frame_v1", checks::frame_v1),
    ("frame_v2", checks::frame_v2),
    ("join_payload", checks::join_payload),
    ("auth_header", checks::auth_header),
    ("query", checks::query),
    ("ws_frames", checks::ws_frames),
];

/// Replays every file under `fuzz/<dir>/<target>/` (dotfiles skipped);
/// returns how many inputs ran.
fn replay(dir: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(dir);
    let mut count = 0;
    let mut failures = Vec::new();
    for (target, check) in TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') || !path.is_file() {
                continue;
            }
            let data = std::fs::read(&path).expect("read input");
            count += 1;
            if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{target}/{name} ({data:?}): {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz inputs that still fail:\n{}",
        failures.join("\n")
    );
    count
}

#[test]
fn seed_corpus_passes_every_check() {
    let count = replay("seeds");
    assert!(count >= 5, "only {count} seeds found");
}

#[test]
fn recorded_crashes_stay_fixed() {
    let count = replay("regressions");
    eprintln!("{count} recorded crash inputs replayed");
}

/// `frame_v2`, 60 s run: a long decimal in a payload
/// (`{"last_seq":767767777777774444444444444477738888888}`) re-parses one
/// ulp away after encode → decode, because serde_json (without its
/// `float_roundtrip` feature) does not round long decimals to the nearest
/// double. Harmless for confab (client floats are never echoed or used);
/// the check now allows one ulp. Kept so the decoder and encoder keep
/// handling huge numbers without panicking.
#[test]
fn frame_v2_huge_float_round_trips_within_an_ulp() {
    let input = br#"["1","1","room:bl\\","cli\u007foijn",{"last_seq":767767777777774444444444444477738888888}]"#;
    checks::frame_v2(input);
    let inbound = confab::socket::frame::decode_text(
        confab::socket::frame::Vsn::V2,
        std::str::from_utf8(input).unwrap(),
    )
    .expect("decodes");
    assert_eq!(inbound.topic, "room:bl\\");
}

/// `join_payload`, 60 s run: `dm:022` is accepted as conversation 22
/// (`"022".parse::<u64>()`), and so are `dm:+22`, `user:07`, ... The
/// authorization uses the parsed id, but the hub topic is the raw string:
/// a message posted on `dm:022` is stored in conversation 22 and never
/// broadcast to the participants on `dm:22` (see
/// tests/security.rs `topic_aliases_are_refused`). Fails until
/// `chat::topic::parse` accepts canonical decimal ids only.
#[test]
fn dm_and_user_topic_aliases_are_not_accepted() {
    use confab::chat::topic::parse;
    for alias in ["dm:022", "dm:+22", "user:07", "user:+7", "dm:00"] {
        assert_eq!(parse(alias), None, "{alias} aliases a canonical topic");
    }
    checks::join_payload(br#"["1","1","dm:022","phx_join",{}]"#);
}
