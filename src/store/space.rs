//! Free space on the store's file system, read once a second so that a new event is
//! refused (`503 store_full`) while there is still room for what keeps existing promises:
//! attempt outcomes, cancels, deletes (see [`super::health`]); and the space the store's
//! file takes.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Bytes of disk the file at `path` takes: its allocated blocks, not its length. redb
/// doubles the length as the file grows and leaves the part not yet written a hole, so
/// `ls -l` shows more than `du` (a new store: 73,728 bytes long, 16,384 on disk;
/// BENCHMARKS.md, "Where scenario b's bytes go").
pub fn disk_bytes(path: &Path) -> std::io::Result<u64> {
    // `st_blocks` counts 512-byte units whatever the file system's block size.
    Ok(std::fs::metadata(path)?.blocks().saturating_mul(512))
}

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

    #[test]
    fn a_file_with_a_hole_takes_less_disk_than_its_length() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("sparse");
        let file = std::fs::File::create(&path).expect("a file");
        file.set_len(1 << 20).expect("a length");
        let disk = super::disk_bytes(&path).expect("its size");
        assert!(disk < 1 << 20, "an unwritten length takes no disk: {disk}");
        assert!(super::disk_bytes(&dir.path().join("none")).is_err());
    }
}
