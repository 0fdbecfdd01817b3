//! A small tmpfs for hookd's data dir: full-disk tests fill it and free it again.

use std::io::Write;

/// A small tmpfs for a data dir, unmounted on drop. `None` (with the reason printed) where
/// this process may not mount; under `CI=true` that is a failure, not a skip.
pub struct SmallDisk {
    pub dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk { dir }),
            other => {
                let why = format!("cannot mount a tmpfs (needs root): {other:?}");
                assert!(std::env::var("CI").is_err(), "{why}");
                eprintln!("skipped: {why}");
                None
            }
        }
    }

    pub fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Writes a file until the disk has at most `leave` bytes free (0: until ENOSPC).
    pub fn fill(&self, leave: u64) {
        let path = self.dir.path().join("filler");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("filler");
        let chunk = vec![0x5a_u8; 64 * 1024];
        loop {
            let free = free_bytes(self.dir.path());
            if free <= leave {
                break;
            }
            let n = usize::try_from((free - leave).min(chunk.len() as u64)).unwrap_or(0);
            if f.write_all(&chunk[..n]).is_err() {
                break; // full
            }
        }
        let _ = f.sync_all();
    }

    pub fn free(&self) {
        std::fs::remove_file(self.dir.path().join("filler")).expect("remove filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn free_bytes(dir: &std::path::Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}
