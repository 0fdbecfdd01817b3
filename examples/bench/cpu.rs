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
//! or per delivery, summed over its nodes ([`CpuUse::print_cost`]), is the scenarios'
//! cost figure.
//!
//! With `--postgres` the window also covers the PostgreSQL server's processes (see
//! [`crate::postgres`] for how they are found and how exited backends are kept):
//! `CPU postgres` by process group (`backends` of the scenario's database, the
//! postmaster, checkpointer, walwriter, autovacuum, `(exited processes)`), and its CPU
//! per event beside hookd's.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use crate::CLOCK_TICKS_PER_SEC;
use crate::postgres::PgTicks;

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

/// The fields of `/proc/<pid>/stat` the bench reads (times in clock ticks).
#[derive(Clone, Copy, Default)]
pub struct ProcStat {
    pub ppid: u32,
    /// utime and stime: the process's own CPU, threads that exited included.
    pub utime: u64,
    pub stime: u64,
    /// cutime and cstime: CPU of the children it waited for (reaped), whole lives.
    pub cutime: u64,
    pub cstime: u64,
}

/// `/proc/<pid>/stat`, or `None` when the process is gone.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (name) state ppid … utime stime cutime cstime …": after the name, field 0 is
    // the state; the name may hold spaces and parentheses, hence the last ')'.
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(ProcStat {
        ppid: u32::try_from(field(1)).unwrap_or(0),
        utime: field(11),
        stime: field(12),
        cutime: field(13),
        cstime: field(14),
    })
}

/// utime + stime of a whole process (threads that exited included), in ticks.
pub fn process_ticks(pid: u32) -> u64 {
    proc_stat(pid).map_or(0, |s| s.utime + s.stime)
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

/// The PostgreSQL server to watch beside hookd: its postmaster and the scenario's
/// database (whose backends are grouped as `backends`), or why it cannot be watched.
pub type PgWatch<'a> = Result<(u32, &'a str), String>;

/// CPU used by hookd's threads (every node's), the bench's threads, PostgreSQL's
/// processes (with `--postgres`) and everything else on the machine between `start` and
/// `finish`.
pub struct CpuWindow {
    started: Instant,
    hookd: Vec<(u32, ProcessTicks)>,
    bench: ProcessTicks,
    /// `None`: a redb run. `Some(Err)`: why PostgreSQL's CPU cannot be read.
    postgres: Option<Result<(u32, String, PgTicks), String>>,
    machine: u64,
}

pub struct CpuUse {
    pub seconds: f64,
    /// (process, thread or process group, CPU seconds), busiest first.
    pub groups: Vec<(&'static str, String, f64)>,
    /// CPU seconds of all other processes (and the kernel's own threads).
    pub others: f64,
    /// `None`: a redb run. `Some(Err)`: PostgreSQL's CPU could not be read, and why.
    pub postgres: Option<Result<(), String>>,
}

impl CpuWindow {
    /// Starts the window over the hookd processes `pids` and, when `postgres` is given,
    /// the server's process tree.
    pub fn start(pids: &[u32], postgres: Option<PgWatch<'_>>) -> CpuWindow {
        let postgres = postgres.map(|watch| {
            watch
                .map(|(postmaster, db)| (postmaster, db.to_string(), PgTicks::take(postmaster, db)))
        });
        CpuWindow {
            started: Instant::now(),
            hookd: pids.iter().map(|&p| (p, ProcessTicks::take(p))).collect(),
            bench: ProcessTicks::take(std::process::id()),
            postgres,
            machine: machine_busy_ticks(),
        }
    }

    pub fn finish(self) -> CpuUse {
        let seconds = self.started.elapsed().as_secs_f64();
        let mut groups = Vec::new();
        let mut measured = 0;
        let hookd: Vec<_> = self
            .hookd
            .iter()
            .map(|(pid, before)| (before, ProcessTicks::take(*pid)))
            .collect();
        let bench = [(&self.bench, ProcessTicks::take(std::process::id()))];
        for (process, snapshots) in [("hookd", &hookd[..]), ("bench", &bench[..])] {
            // Summed over the processes (hookd's nodes): threads of the same name are one
            // group whichever node they run in.
            let mut by_group: HashMap<String, u64> = HashMap::new();
            for (before, after) in snapshots {
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
            }
            groups.extend(
                by_group
                    .into_iter()
                    .map(|(g, t)| (process, g, t as f64 / CLOCK_TICKS_PER_SEC)),
            );
        }
        let postgres = self.postgres.map(|watch| {
            watch.map(|(postmaster, db, before)| {
                for (group, ticks) in PgTicks::take(postmaster, &db).since(&before) {
                    measured += ticks;
                    groups.push(("postgres", group, ticks as f64 / CLOCK_TICKS_PER_SEC));
                }
            })
        });
        groups.sort_by(|a, b| b.2.total_cmp(&a.2));
        let machine = machine_busy_ticks().saturating_sub(self.machine);
        CpuUse {
            seconds,
            groups,
            others: machine.saturating_sub(measured) as f64 / CLOCK_TICKS_PER_SEC,
            postgres,
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
    /// CPU time `process` ("hookd": all nodes; "postgres") spent per unit of work (e.g.
    /// per event), in microseconds.
    pub fn us_per(&self, process: &str, units: usize) -> f64 {
        let seconds: f64 = self
            .groups
            .iter()
            .filter(|g| g.0 == process)
            .map(|g| g.2)
            .sum();
        seconds * 1e6 / units.max(1) as f64
    }

    /// The `CPU cost` lines: hookd's CPU per `unit` (and per `second_unit`), then
    /// PostgreSQL's the same way when the run stores there.
    pub fn print_cost(&self, unit: (usize, &str), second_unit: Option<(usize, &str)>) {
        let mut processes = vec!["hookd"];
        if let Some(Ok(())) = self.postgres {
            processes.push("postgres");
        }
        for process in processes {
            let mut line = format!(
                "CPU cost          {process} {:.0} µs per {}",
                self.us_per(process, unit.0),
                unit.1
            );
            if let Some((units, name)) = second_unit {
                let _ = write!(line, " ({:.0} µs per {name})", self.us_per(process, units));
            }
            println!("{line}");
        }
    }

    pub fn print(&self) {
        for process in ["hookd", "postgres", "bench"] {
            if process == "postgres" {
                match &self.postgres {
                    Some(Ok(())) => {}
                    Some(Err(why)) => {
                        println!("CPU postgres      not measured: {why}");
                        continue;
                    }
                    None => continue,
                }
            }
            let total: f64 = self
                .groups
                .iter()
                .filter(|g| g.0 == process)
                .map(|g| g.2)
                .sum();
            let mut line = format!(
                "{:<18}{:.2} cores over {:.1} s:",
                format!("CPU {process}"),
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
