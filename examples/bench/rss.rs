//! Memory of a process: `VmRSS` sampled every 100 ms on a thread (the sampled maximum),
//! and `VmHWM` (the kernel's own peak) read at the end, both from `/proc/<pid>/status`.
//! The two are printed side by side: VmHWM catches a spike shorter than the sampling
//! period.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A `kB` field of `/proc/<pid>/status`, e.g. `VmRSS` or `VmHWM`.
pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub struct RssStats {
    pub hwm_kib: u64,
    pub sampled_max_kib: u64,
}

/// Samples a process's VmRSS every 100 ms on a thread.
pub struct RssSampler {
    pub stop: Arc<AtomicBool>,
    pub max_kib: Arc<AtomicU64>,
    pub thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max_kib = Arc::new(AtomicU64::new(0));
        let (stop2, max2) = (Arc::clone(&stop), Arc::clone(&max_kib));
        let thread = std::thread::Builder::new()
            .name("bench-rss".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    if let Some(kib) = proc_status_kib(pid, "VmRSS") {
                        max2.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .expect("spawn the RSS sampler");
        RssSampler {
            stop,
            max_kib,
            thread: Some(thread),
        }
    }

    pub fn finish(&mut self, pid: u32) -> RssStats {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        RssStats {
            hwm_kib: proc_status_kib(pid, "VmHWM").unwrap_or(0),
            sampled_max_kib: self.max_kib.load(Ordering::Relaxed),
        }
    }
}
