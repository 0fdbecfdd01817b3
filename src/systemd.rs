//! The systemd notify protocol, without libsystemd: datagrams to `$NOTIFY_SOCKET`.
//!
//! hookd sends `READY=1` once the store is open and the port is bound, `STOPPING=1` when
//! shutdown begins, and — when the unit sets `WatchdogSec=` — `WATCHDOG=1` from the
//! scheduler's loop, so a wedged scheduler stops the pings and systemd restarts hookd.
//! Outside systemd (no `$NOTIFY_SOCKET`) every call is a no-op.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

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
