//! The output of a run: a short human summary on stdout, then exactly one
//! final line of JSON with the parameters, the figures, the load
//! generator's and the server's CPU and memory, and any problem noticed
//! (errors, closes, losses) — `ok` is false when there is one.

use serde_json::{json, Value};

use crate::procstat::{self, Meter};

/// What a mode hands back.
#[derive(Default)]
pub struct Report {
    /// Human summary lines.
    pub lines: Vec<String>,
    /// The mode's parameters as run.
    pub params: Value,
    /// The mode's figures.
    pub results: Value,
    /// Anything that went wrong (errors, closes, gaps); empty = ok.
    pub problems: Vec<String>,
    /// Whether a problem breaks a correctness promise (loss, gaps,
    /// duplicates): the exit status is then 3.
    pub violation: bool,
}

/// Prints the summary and the final JSON line; returns the exit status.
pub fn emit(
    mode: &str,
    label: Option<&str>,
    started_unix: u64,
    report: Report,
    meter: &Meter,
) -> u8 {
    let (processes, mut problems) = meter.figures();
    problems.splice(0..0, report.problems);
    let ok = problems.is_empty();
    for line in &report.lines {
        println!("{line}");
    }
    let lg = &processes["loadgen"];
    println!(
        "loadgen: cpu {}% of one core in the window ({}% whole run), {} threads, peak rss {} KiB, {} µs cpu per frame received",
        lg["cpu_pct"], lg["cpu_pct_whole_run"], lg["threads"], lg["rss_kib_peak"], lg["cpu_us_per_frame_received"]
    );
    let sv = &processes["server"];
    if !sv.is_null() {
        println!(
            "server:  cpu {}% of one core in the window ({}% whole run), rss {} -> {} KiB (peak {}), {} threads",
            sv["cpu_pct"],
            sv["cpu_pct_whole_run"],
            sv["rss_kib_window_start"],
            sv["rss_kib_window_end"],
            sv["rss_kib_peak"],
            sv["threads"]
        );
        if !sv["write_syscalls"].is_null() {
            println!(
                "server:  {} write/writev/pwrite calls in the window, {} frames received per call",
                sv["write_syscalls"], sv["frames_received_per_write"]
            );
        }
    }
    if let Some(watched) = processes["watched"].as_array() {
        let parts: Vec<String> = watched
            .iter()
            .map(|w| {
                format!(
                    "{} {}% ({} s)",
                    w["name"].as_str().unwrap_or("?"),
                    w["cpu_pct"],
                    w["cpu_s"]
                )
            })
            .collect();
        println!(
            "watched: cpu in the window, % of one core: {}",
            parts.join(", ")
        );
    }
    let m = &processes["machine_cpu"];
    if !m.is_null() {
        println!(
            "machine: user {}%, system {}%, idle {}%, stolen {}% of all cores in the window",
            m["user_pct"], m["system_pct"], m["idle_pct"], m["steal_pct"]
        );
    }
    if ok {
        println!("ok: no problems noticed");
    } else {
        for p in &problems {
            println!("PROBLEM: {p}");
        }
    }
    let mut line = json!({
        "mode": mode,
        "label": label,
        "ok": ok,
        "problems": problems,
        "started_unix": started_unix,
        "host": procstat::host(),
        "params": report.params,
        "results": report.results,
        "loadgen": processes["loadgen"],
        "server": processes["server"],
        "kernel_tcp": processes["kernel_tcp"],
        "machine_cpu": processes["machine_cpu"],
    });
    if !processes["watched"].is_null() {
        line["watched"] = processes["watched"].clone();
    }
    println!("{line}");
    if report.violation {
        3
    } else {
        0
    }
}

/// The final line of a run that could not finish (set-up failure, hard timeout).
pub fn emit_failure(
    mode: &str,
    label: Option<&str>,
    started_unix: u64,
    error: &str,
    meter: &Meter,
) {
    let (processes, mut problems) = meter.figures();
    problems.insert(0, error.to_string());
    println!("FAILED: {error}");
    let line = json!({
        "mode": mode,
        "label": label,
        "ok": false,
        "error": error,
        "problems": problems,
        "started_unix": started_unix,
        "host": procstat::host(),
        "loadgen": processes["loadgen"],
        "server": processes["server"],
    });
    println!("{line}");
}
