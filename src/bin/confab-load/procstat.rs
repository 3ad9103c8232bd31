//! CPU and memory of a process from /proc: `utime + stime` from
//! `/proc/PID/stat` (clock ticks), `VmRSS` and `Threads` from
//! `/proc/PID/status`, write system calls (`syscw`) from `/proc/PID/io`
//! (the kernel counts write, writev and pwrite there, store and log writes
//! included, but not send or sendmsg).
//! [`Meter`] samples this process and, with `--server-pid`, the server at
//! start-up, at the start and end of the measured window, and every 200 ms
//! for peak RSS; CPU shares are CPU seconds over wall seconds of the window
//! (100 % = one core busy). It also takes the whole machine's split of CPU
//! time (user, system, idle, steal) over the window from `/proc/stat`: on
//! a shared virtual machine, time stolen by the hypervisor is capacity
//! neither process had. `--watch NAME=PID` adds more processes (with
//! their children, e.g. a database server's backends) whose CPU over the
//! window is reported under `watched`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::stats::round1;

/// One reading of a process.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size in KiB.
    pub rss_kib: u64,
    /// Number of threads.
    pub threads: u64,
    /// Write system calls so far (`None`: `/proc/PID/io` not readable).
    pub write_syscalls: Option<u64>,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status` (`None`: this process).
pub fn sample(pid: Option<u32>) -> Option<Sample> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_string(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    let value = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let write_syscalls = std::fs::read_to_string(format!("{dir}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("syscw:"))?
                .trim()
                .parse()
                .ok()
        });
    Some(Sample {
        cpu_ticks: utime + stime,
        rss_kib: value("VmRSS:").unwrap_or(0),
        threads: value("Threads:").unwrap_or(0),
        write_syscalls,
    })
}

/// CPU ticks of `pid` and its children: its own utime + stime, the cutime +
/// cstime of children it has reaped, and utime + stime of each live child
/// (a process whose parent is `pid`). `None` when `pid` is gone.
pub fn tree_ticks(pid: u32) -> Option<u64> {
    let fields = |stat: &str| -> Option<Vec<u64>> {
        let rest = &stat[stat.rfind(')')? + 1..];
        Some(
            rest.split_whitespace()
                .map(|f| f.parse::<i64>().map_or(0, |v| v.max(0) as u64))
                .collect(),
        )
    };
    // fields[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
    let own = fields(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let mut total: u64 = own.get(11..15)?.iter().sum();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(child) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if child == pid {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
                continue;
            };
            if let Some(f) = fields(&stat) {
                if f.get(1) == Some(&u64::from(pid)) {
                    total += f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0);
                }
            }
        }
    }
    Some(total)
}

/// The machine's CPU time so far, in clock ticks summed over all cores:
/// `[user, system, idle, steal]` from the first line of `/proc/stat`
/// (user includes nice; system includes irq and softirq; idle includes
/// iowait).
pub fn machine_cpu() -> Option<[u64; 4]> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    Some([at(0) + at(1), at(2) + at(5) + at(6), at(3) + at(4), at(7)])
}

/// `{user_pct, system_pct, idle_pct, steal_pct}` of all cores between two
/// [`machine_cpu`] readings.
fn machine_split(a: Option<[u64; 4]>, b: Option<[u64; 4]>) -> Value {
    let (Some(a), Some(b)) = (a, b) else {
        return Value::Null;
    };
    let d: [u64; 4] = std::array::from_fn(|i| b[i].saturating_sub(a[i]));
    let total: u64 = d.iter().sum();
    if total == 0 {
        return Value::Null;
    }
    let pct = |x: u64| round1(100.0 * x as f64 / total as f64);
    json!({"user_pct": pct(d[0]), "system_pct": pct(d[1]), "idle_pct": pct(d[2]), "steal_pct": pct(d[3])})
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, usually 100).
pub fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Cores and memory of this machine.
pub fn host() -> Value {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let open_files = {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        limit.rlim_cur
    };
    json!({"cores": cores, "mem_total_mib": mem_kib / 1024, "loadgen_open_files_limit": open_files})
}

/// TCP counters of this network namespace that show a server's listen
/// queue overflowing (a dropped SYN costs the client a 1 s retransmit):
/// `TcpExt` ListenOverflows, ListenDrops and TCPSynRetrans from
/// /proc/net/netstat. They count every process in the namespace.
pub fn tcp_counters() -> Option<[u64; 3]> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let get = |key: &str| -> u64 {
        names
            .iter()
            .position(|n| *n == key)
            .and_then(|i| values.get(i)?.parse().ok())
            .unwrap_or(0)
    };
    Some([
        get("ListenOverflows"),
        get("ListenDrops"),
        get("TCPSynRetrans"),
    ])
}

#[derive(Clone)]
struct Mark {
    at: Instant,
    me: Option<Sample>,
    server: Option<Sample>,
    /// Frames received by this process so far.
    frames: u64,
    tcp: Option<[u64; 3]>,
    machine: Option<[u64; 4]>,
    /// [`tree_ticks`] of each watched process.
    watched: Vec<Option<u64>>,
}

impl Mark {
    fn now(server_pid: Option<u32>, watch: &[(String, u32)]) -> Mark {
        Mark {
            watched: watch.iter().map(|(_, pid)| tree_ticks(*pid)).collect(),
            at: Instant::now(),
            me: sample(None),
            server: server_pid.and_then(|pid| sample(Some(pid))),
            frames: crate::client::FRAMES_RECEIVED.load(Relaxed),
            tcp: tcp_counters(),
            machine: machine_cpu(),
        }
    }
}

/// Samples this process and the server over a run.
pub struct Meter {
    server_pid: Option<u32>,
    watch: Vec<(String, u32)>,
    start: Mark,
    begin: Mutex<Option<Mark>>,
    end: Mutex<Option<Mark>>,
    me_peak_rss: AtomicU64,
    server_peak_rss: AtomicU64,
}

impl Meter {
    /// Takes the start-up sample and starts the 200 ms RSS sampler.
    pub fn start(server_pid: Option<u32>, watch: Vec<(String, u32)>) -> Arc<Meter> {
        let meter = Arc::new(Meter {
            server_pid,
            start: Mark::now(server_pid, &watch),
            watch,
            begin: Mutex::new(None),
            end: Mutex::new(None),
            me_peak_rss: AtomicU64::new(0),
            server_peak_rss: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&meter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let Some(meter) = weak.upgrade() else { break };
                meter.peaks();
            }
        });
        meter
    }

    fn peaks(&self) {
        if let Some(s) = sample(None) {
            self.me_peak_rss.fetch_max(s.rss_kib, Relaxed);
        }
        if let Some(s) = self.server_pid.and_then(|pid| sample(Some(pid))) {
            self.server_peak_rss.fetch_max(s.rss_kib, Relaxed);
        }
    }

    /// Marks the start of the measured window.
    pub fn begin_window(&self) {
        *self.begin.lock().unwrap() = Some(Mark::now(self.server_pid, &self.watch));
    }

    /// Marks the end of the measured window.
    pub fn end_window(&self) {
        self.peaks();
        *self.end.lock().unwrap() = Some(Mark::now(self.server_pid, &self.watch));
    }

    fn window(&self) -> Option<(Mark, Mark)> {
        let begin = self.begin.lock().unwrap().clone()?;
        let end = self
            .end
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| Mark::now(self.server_pid, &self.watch));
        Some((begin, end))
    }

    /// `{"loadgen": {...}, "server": {...} | null, "kernel_tcp":
    /// {"whole_run": {...}, "window": {...}}}` and problems noticed.
    pub fn figures(&self) -> (Value, Vec<String>) {
        let mut problems = Vec::new();
        let last = Mark::now(self.server_pid, &self.watch);
        let (begin, end) = self
            .window()
            .unwrap_or_else(|| (self.start.clone(), last.clone()));
        let wall = end.at.duration_since(begin.at).as_secs_f64().max(1e-9);
        let share = |a: Option<Sample>, b: Option<Sample>| match (a, b) {
            (Some(a), Some(b)) => json!(round1(100.0 * cpu_secs(a, b) / wall)),
            _ => Value::Null,
        };
        let rss = |s: Option<Sample>| s.map(|s| s.rss_kib);
        let total_wall = last
            .at
            .duration_since(self.start.at)
            .as_secs_f64()
            .max(1e-9);
        let frames = end.frames.saturating_sub(begin.frames);
        let us_per_frame = match (begin.me, end.me) {
            (Some(a), Some(b)) if frames > 0 => {
                json!(round1(cpu_secs(a, b) * 1e6 / frames as f64))
            }
            _ => Value::Null,
        };
        // Frames this generator received per write call of the server: how
        // many frames the server packs into one write, when this generator
        // is its only client (the server also writes its log and store).
        let writes_at = |m: &Mark| m.server.and_then(|s| s.write_syscalls);
        let server_writes = writes_at(&begin)
            .zip(writes_at(&end))
            .map(|(a, b)| b.saturating_sub(a));
        let frames_per_write = match server_writes {
            Some(w) if w > 0 => json!(round1(frames as f64 / w as f64)),
            _ => Value::Null,
        };
        let loadgen = json!({
            "cpu_pct": share(begin.me, end.me),
            "frames_received": frames,
            "cpu_us_per_frame_received": us_per_frame,
            "cpu_pct_whole_run": share(self.start.me, last.me),
            "rss_kib_peak": self.me_peak_rss.load(Relaxed).max(rss(last.me).unwrap_or(0)),
            "threads": last.me.map(|s| s.threads),
            "wall_s_whole_run": round1(total_wall),
        });
        let server = match self.server_pid {
            None => Value::Null,
            Some(pid) => {
                if last.server.is_none() {
                    problems.push(format!(
                        "server process {pid} is gone at the end of the run (crashed or killed)"
                    ));
                }
                json!({
                    "pid": pid,
                    "alive_at_end": last.server.is_some(),
                    "cpu_pct": share(begin.server, end.server),
                    "cpu_pct_whole_run": share(self.start.server, last.server),
                    "rss_kib_at_start": rss(self.start.server),
                    "rss_kib_window_start": rss(begin.server),
                    "rss_kib_window_end": rss(end.server),
                    "rss_kib_peak": self.server_peak_rss.load(Relaxed),
                    "threads": end.server.map(|s| s.threads),
                    "write_syscalls": server_writes,
                    "frames_received_per_write": frames_per_write,
                })
            }
        };
        let delta = |a: Option<[u64; 3]>, b: Option<[u64; 3]>| match (a, b) {
            (Some(a), Some(b)) => {
                let d = |i: usize| b[i].saturating_sub(a[i]);
                json!({"listen_overflows": d(0), "listen_drops": d(1), "syn_retransmits": d(2)})
            }
            _ => Value::Null,
        };
        let kernel = json!({
            "whole_run": delta(self.start.tcp, last.tcp),
            "window": delta(begin.tcp, end.tcp),
        });
        if let Some(n) = kernel["whole_run"]["listen_overflows"]
            .as_u64()
            .filter(|&n| n > 0)
        {
            problems.push(format!(
                "the kernel dropped {n} connection attempts on a full listen queue ({} of them in the measured window; ListenOverflows of the whole network namespace); each costs the client a 1 s SYN retransmit",
                kernel["window"]["listen_overflows"]
            ));
        }
        let machine = machine_split(begin.machine, end.machine);
        let mut watched = Vec::with_capacity(self.watch.len());
        for (i, (name, pid)) in self.watch.iter().enumerate() {
            let at = |m: &Mark| m.watched.get(i).copied().flatten();
            let cpu_s = at(&begin)
                .zip(at(&end))
                .map(|(a, b)| b.saturating_sub(a) as f64 / ticks_per_sec());
            if at(&last).is_none() {
                problems.push(format!(
                    "watched process {name} ({pid}) is gone at the end of the run"
                ));
            }
            watched.push(json!({
                "name": name,
                "pid": pid,
                "cpu_s": cpu_s.map(|s| (s * 100.0).round() / 100.0),
                "cpu_pct": cpu_s.map(|s| round1(100.0 * s / wall)),
                "alive_at_end": at(&last).is_some(),
            }));
        }
        let watched = if watched.is_empty() {
            Value::Null
        } else {
            Value::Array(watched)
        };
        (
            json!({"loadgen": loadgen, "server": server, "kernel_tcp": kernel, "machine_cpu": machine, "watched": watched}),
            problems,
        )
    }

    /// Server RSS (KiB) at start-up and now.
    pub fn server_rss(&self) -> Option<(u64, u64)> {
        let pid = self.server_pid?;
        Some((self.start.server?.rss_kib, sample(Some(pid))?.rss_kib))
    }
}

fn cpu_secs(a: Sample, b: Sample) -> f64 {
    b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64 / ticks_per_sec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let s = sample(None).unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.threads >= 1);
        assert!(s.write_syscalls.is_some());
        assert!(machine_cpu().is_some());
        assert!(sample(Some(u32::MAX - 1)).is_none());
        assert!(tcp_counters().is_some());
        let me = std::process::id();
        assert!(tree_ticks(me).is_some());
        assert!(tree_ticks(u32::MAX - 1).is_none());
    }

    #[test]
    fn machine_split_is_shares_of_the_ticks_between_readings() {
        let split = machine_split(Some([100, 50, 900, 0]), Some([110, 70, 960, 10]));
        assert_eq!(
            split,
            json!({"user_pct": 10.0, "system_pct": 20.0, "idle_pct": 60.0, "steal_pct": 10.0})
        );
        // No ticks between the readings, or a reading missing: no split.
        assert!(machine_split(Some([1, 2, 3, 4]), Some([1, 2, 3, 4])).is_null());
        assert!(machine_split(None, Some([1, 2, 3, 4])).is_null());
    }
}
