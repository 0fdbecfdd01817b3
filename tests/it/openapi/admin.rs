//! Admin: `POST /api/admin/backup` needs the admin token and writes a complete copy
//! under `<data_dir>/backups`.

use std::path::PathBuf;

use super::checker::{Checker, OpId, Req, start};
use super::paths::*;
use crate::common::{ADMIN, PUBLISHER, USER};

pub const COVERS: &[OpId] = &[("POST", BACKUP)];

#[test]
fn backup_needs_the_admin_token_and_writes_the_file() {
    let hookd = start();
    let c = Checker::new(&hookd);
    hookd.create_webhook(USER, "http://127.0.0.1:9/x", &["*"], None);
    c.expect_error(
        Req::new("POST", BACKUP).token(USER),
        403,
        "forbidden",
        "backup as user",
    );
    c.expect_error(
        Req::new("POST", BACKUP).token(PUBLISHER),
        403,
        "forbidden",
        "backup as publisher",
    );
    c.expect_error(
        Req::new("POST", BACKUP),
        401,
        "unauthorized",
        "backup without a token",
    );
    let r = c.expect(Req::new("POST", BACKUP).token(ADMIN), 200, "backup");
    let v = r.json();
    let file = PathBuf::from(v["path"].as_str().expect("path"));
    assert!(file.is_absolute(), "{}", r.body);
    let backups = hookd.dir.path().join("data").join("backups");
    let canonical = std::fs::canonicalize(&backups).unwrap_or(backups.clone());
    assert!(
        file.starts_with(&backups) || file.starts_with(&canonical),
        "{} is not under {}",
        file.display(),
        backups.display()
    );
    let size = std::fs::metadata(&file)
        .expect("the backup file exists")
        .len();
    assert_eq!(Some(size), v["bytes"].as_u64(), "{}", r.body);
    c.finish(COVERS);
}
