//! The systemd notify protocol, without libsystemd: datagrams to `$NOTIFY_SOCKET`.
//!
//! hookd sends `READY=1` once the store is open and the port is bound, `STOPPING=1` when
//! shutdown begins, and — when the unit sets `WatchdogSec=` — `WATCHDOG=1` while hookd
//! is really alive ([`Liveness`]): the scheduler's loop and the store's writer thread both
//! beat, and the store has not been unable to commit for longer than
//! `store.max_unavailable`. A wedged loop or a store that will not come back stops the
//! pings, and systemd restarts hookd. Outside systemd (no `$NOTIFY_SOCKET`) every call
//! is a no-op.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Beat;
use crate::store::Health;

fn socket_addr() -> Option<SocketAddr> {
    let path = std::env::var_os("NOTIFY_SOCKET")?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name).ok()
    } else {
        SocketAddr::from_pathname(path).ok()
    }
}

/// Sends one notification, e.g. `"READY=1"`. Failures are logged, never fatal.
pub fn notify(state: &str) {
    let Some(addr) = socket_addr() else { return };
    let sent = UnixDatagram::unbound().and_then(|s| s.send_to_addr(state.as_bytes(), &addr));
    if let Err(e) = sent {
        tracing::warn!(error = %e, state, "cannot notify systemd");
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, if the watchdog is on and
/// meant for this process.
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var("WATCHDOG_PID").ok()
        && pid.trim() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// What must hold for hookd to count as alive.
pub struct Liveness {
    /// Beats while the scheduler's loop is responsive.
    pub scheduler: Arc<Beat>,
    /// The store's health: its writer's beats and how long it has been down.
    pub store: crate::store::Store,
    /// How long the store may be unable to commit before hookd gives up on itself.
    pub max_unavailable: Duration,
}

impl Liveness {
    /// `None` when alive; otherwise what is wrong, for the log.
    pub fn problem(&self, period: Duration) -> Option<String> {
        // A beat is due every second; allow a whole ping period on top for load.
        let stale = period.max(Duration::from_secs(1)) + Duration::from_secs(1);
        let health: &Health = self.store.health();
        if self.scheduler.silent_for() > stale {
            return Some(format!(
                "the scheduler has not run for {:?}",
                self.scheduler.silent_for()
            ));
        }
        // While the store is down the writer may sit in a long reopen (redb repairs the
        // file); max_unavailable bounds that case below.
        if health.commit_fault().is_none() && health.writer_silent_for() > stale {
            return Some(format!(
                "the store's writer has not run for {:?}",
                health.writer_silent_for()
            ));
        }
        match health.down_for() {
            Some(down) if down > self.max_unavailable => Some(format!(
                "the store has been unable to commit for {down:?} (store.max_unavailable is {:?})",
                self.max_unavailable
            )),
            _ => None,
        }
    }
}

/// Pings the watchdog every `period` while `liveness` holds; logs once when it stops
/// holding (systemd then restarts hookd after `WatchdogSec`).
pub async fn watchdog(period: Duration, liveness: Liveness) {
    // The first ping after one period, not at once: READY=1 comes first.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut stalled = false;
    loop {
        tick.tick().await;
        match liveness.problem(period) {
            None => {
                stalled = false;
                notify("WATCHDOG=1");
            }
            Some(problem) => {
                if !stalled {
                    tracing::error!("not pinging the systemd watchdog: {problem}");
                }
                stalled = true;
            }
        }
    }
}
