//! Free space on the store's file system, read once a second so that a new event is
//! refused (`503 store_full`) while there is still room for what keeps existing promises:
//! attempt outcomes, cancels, deletes (see [`super::health`]).

use std::path::Path;

/// Bytes an unprivileged process can still write on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stats = rustix::fs::statvfs(dir)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_free_space_of_a_directory() {
        let dir = std::env::temp_dir();
        assert!(super::free_bytes(&dir).is_ok());
        assert!(super::free_bytes(&dir.join("no/such/dir")).is_err());
    }
}
