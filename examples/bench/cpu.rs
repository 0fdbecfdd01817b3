//! Who was busy during a measured phase, from `/proc`.
//!
//! A [`CpuWindow`] snapshots, at start and at finish, the utime + stime (clock ticks,
//! 1/100 s) of every thread of the hookd process(es) and of the bench
//! (`/proc/<pid>/task/*/stat`), the totals of those processes (`/proc/<pid>/stat`,
//! which keeps the CPU of threads that already exited), and the machine's busy ticks
//! (`/proc/stat`). The difference gives cores used per thread group (threads named
//! `hookd-worker-12` are summed as `hookd-worker-*`), `(exited threads)` for CPU of
//! threads that ended inside the window (the bench's driver threads; in hookd, the
//! short-lived threads ureq spawns to resolve a destination), and `CPU others`: the rest
//! of the machine, to read every figure next to on a shared box. hookd's CPU per event
//! or per delivery ([`CpuUse::hookd_us_per`]) is the scenarios' cost figure.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use crate::CLOCK_TICKS_PER_SEC;

/// CPU ticks per thread of one process: tid → (name, utime + stime).
pub fn thread_ticks(pid: u32) -> HashMap<u32, (String, u64)> {
    let mut ticks = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return ticks;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (name) state ppid … utime stime …": fields 14 and 15, counted from 1.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ticks.insert(tid, (name, field(11) + field(12)));
    }
    ticks
}

/// utime + stime of a whole process (threads that exited included), in ticks.
pub fn process_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(close) = stat.rfind(')') else {
        return 0;
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Busy ticks of the whole machine (every CPU), from the `cpu` line of `/proc/stat`.
pub fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal …: all but idle and iowait.
    line.split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

/// A snapshot of one process's CPU time, per thread and in total.
pub struct ProcessTicks {
    pub threads: HashMap<u32, (String, u64)>,
    pub total: u64,
}

impl ProcessTicks {
    pub fn take(pid: u32) -> ProcessTicks {
        ProcessTicks {
            threads: thread_ticks(pid),
            total: process_ticks(pid),
        }
    }
}

/// CPU used by hookd's threads, the bench's threads and everything else on the machine
/// between `start` and `finish`.
pub struct CpuWindow {
    pub pid: u32,
    pub started: Instant,
    pub hookd: ProcessTicks,
    pub bench: ProcessTicks,
    pub machine: u64,
}

pub struct CpuUse {
    pub seconds: f64,
    /// (process, thread group, CPU seconds), busiest first.
    pub groups: Vec<(&'static str, String, f64)>,
    /// CPU seconds of all other processes (and the kernel's own threads).
    pub others: f64,
}

impl CpuWindow {
    pub fn start(pid: u32) -> CpuWindow {
        CpuWindow {
            pid,
            started: Instant::now(),
            hookd: ProcessTicks::take(pid),
            bench: ProcessTicks::take(std::process::id()),
            machine: machine_busy_ticks(),
        }
    }

    pub fn finish(self) -> CpuUse {
        let seconds = self.started.elapsed().as_secs_f64();
        let mut groups = Vec::new();
        let mut measured = 0;
        for (process, before, after) in [
            ("hookd", &self.hookd, ProcessTicks::take(self.pid)),
            ("bench", &self.bench, ProcessTicks::take(std::process::id())),
        ] {
            let mut by_group: HashMap<String, u64> = HashMap::new();
            let mut live = 0;
            for (tid, (name, ticks)) in &after.threads {
                let used = ticks.saturating_sub(before.threads.get(tid).map_or(0, |(_, t)| *t));
                live += used;
                *by_group.entry(thread_group(name)).or_default() += used;
            }
            // Threads that ended inside the window (the driver's) only show in the total.
            let total = after.total.saturating_sub(before.total);
            if total > live {
                *by_group.entry("(exited threads)".into()).or_default() += total - live;
            }
            measured += total.max(live);
            groups.extend(
                by_group
                    .into_iter()
                    .map(|(g, t)| (process, g, t as f64 / CLOCK_TICKS_PER_SEC)),
            );
        }
        groups.sort_by(|a, b| b.2.total_cmp(&a.2));
        let machine = machine_busy_ticks().saturating_sub(self.machine);
        CpuUse {
            seconds,
            groups,
            others: machine.saturating_sub(measured) as f64 / CLOCK_TICKS_PER_SEC,
        }
    }
}

/// `hookd-worker-12` → `hookd-worker-*`: threads of a pool are summed.
pub fn thread_group(name: &str) -> String {
    let trimmed = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if trimmed.len() < name.len() {
        format!("{trimmed}*")
    } else {
        name.to_string()
    }
}

impl CpuUse {
    /// CPU time hookd spent per unit of work (e.g. per event), in microseconds.
    pub fn hookd_us_per(&self, units: usize) -> f64 {
        let hookd: f64 = self
            .groups
            .iter()
            .filter(|g| g.0 == "hookd")
            .map(|g| g.2)
            .sum();
        hookd * 1e6 / units.max(1) as f64
    }

    pub fn print(&self) {
        for process in ["hookd", "bench"] {
            let total: f64 = self
                .groups
                .iter()
                .filter(|g| g.0 == process)
                .map(|g| g.2)
                .sum();
            let mut line = format!(
                "CPU {process:<6}        {:.2} cores over {:.1} s:",
                total / self.seconds.max(1e-9),
                self.seconds
            );
            for (_, group, secs) in self.groups.iter().filter(|g| g.0 == process).take(5) {
                let _ = write!(line, " {group} {:.2}", secs / self.seconds.max(1e-9));
            }
            println!("{line}");
        }
        println!(
            "CPU others        {:.2} cores (other processes on the machine, kernel threads)",
            self.others / self.seconds.max(1e-9)
        );
    }
}
