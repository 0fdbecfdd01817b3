//! `hookd backup`: ask the running daemon (at the config's listen address, or `--url`)
//! to write a consistent copy of its store, and print where it is.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

/// A backup of a large store can take a while; the daemon answers when it is written.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(3600);

pub fn run(
    config: Option<std::path::PathBuf>,
    url: Option<String>,
    token: &str,
) -> anyhow::Result<ExitCode> {
    let base = match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let (_, config) = super::load_config(config)?;
            let mut addr = config.listen;
            // A daemon listening on every interface is reached on this machine's loopback.
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
    };
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(BACKUP_TIMEOUT))
        .build()
        .new_agent();
    let mut response = agent
        .post(format!("{base}/api/admin/backup"))
        .header("Authorization", format!("Bearer {token}"))
        .send_empty()
        .with_context(|| format!("cannot reach hookd at {base}"))?;
    let status = response.status().as_u16();
    // The body is only shown to the operator; an unreadable one is shown as empty.
    let body = response.body_mut().read_to_string().unwrap_or_default();
    if status != 200 {
        anyhow::bail!("backup refused ({status}): {body}");
    }
    println!("{body}");
    Ok(ExitCode::SUCCESS)
}
