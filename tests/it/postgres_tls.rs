//! TLS to PostgreSQL (`sslmode`; docs/scaling-out.md, "TLS to the
//! database"), against the suite's real server with TLS turned on: a certificate for
//! `localhost` signed by a throwaway authority, made with the `openssl` command. hookd
//! with `sslmode=verify-full` serves over encrypted connections only; the wrong authority
//! or a host name the certificate does not name is refused, saying why; `require` and
//! `verify-ca` connect as documented.
//!
//! Only under `HOOKD_TEST_STORE=postgres` (elsewhere the test skips with a note). Turning
//! TLS on leaves the server's other clients as they were: they ask for no TLS
//! (`sslmode=disable`), and the server only offers it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::postgres::{self, Database};
use crate::common::{self, Hookd, Settings, eventually};

/// Runs `openssl` with `args` (split at spaces) in `dir`, failing the test with its
/// output if it fails.
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian: apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new P-256 key, for `openssl req`.
const EC_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1";

/// An authority (`<name>.pem`, `<name>.key`) in `dir`.
fn authority(dir: &Path, name: &str) {
    openssl(
        dir,
        &format!(
            "req -x509 {EC_KEY} -nodes -keyout {name}.key -out {name}.pem -days 2 \
             -subj /CN=hookd-test-{name}"
        ),
    );
}

/// Turns TLS on in the suite's server with a certificate for `localhost` (and no IP
/// address) signed by `ca.pem`; returns the directory that holds `ca.pem` and `other.pem`
/// (an authority that signed nothing).
fn tls_on(server: &postgres::Server) -> std::path::PathBuf {
    // In the server's own dir, which its owner may read.
    let dir = server.dir.join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    authority(&dir, "ca");
    authority(&dir, "other");
    openssl(
        &dir,
        &format!("req {EC_KEY} -nodes -keyout server.key -out server.csr -subj /CN=localhost"),
    );
    std::fs::write(dir.join("server.ext"), "subjectAltName = DNS:localhost\n").unwrap();
    openssl(
        &dir,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
         -days 2 -extfile server.ext",
    );
    // PostgreSQL takes a key only if its owner alone may read it.
    let owner = std::fs::metadata(&server.dir).unwrap();
    for file in ["server.key", "server.pem"] {
        let path = dir.join(file);
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    for sql in [
        format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            dir.join("server.pem").display()
        ),
        format!(
            "ALTER SYSTEM SET ssl_key_file = '{}'",
            dir.join("server.key").display()
        ),
        "ALTER SYSTEM SET ssl = on".into(),
        "SELECT pg_reload_conf()".into(),
    ] {
        server
            .psql("postgres", &sql)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    eventually(
        Duration::from_secs(10),
        "the server reloads with ssl on",
        || (server.psql("postgres", "SHOW ssl").ok()? == "on").then_some(()),
    );
    dir
}

/// `hookd migrate` on `url`: whether it succeeded, and what it printed.
fn migrate(url: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookd.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:0\"\n\n[store]\nbackend = \"postgres\"\npostgres_url = \"{url}\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .expect("run hookd migrate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn url(host: &str, db: &Database, query: &str) -> String {
    format!(
        "postgres://postgres@{host}:{}/{}?{query}",
        postgres::server().port,
        db.name()
    )
}

#[test]
fn tls_to_postgres_is_used_and_the_certificate_is_checked() {
    if common::postgres_only() {
        return;
    }
    let server = postgres::server();
    let tls = tls_on(server);
    let (ca, other) = (tls.join("ca.pem"), tls.join("other.pem"));
    let db = postgres::database();

    // verify-full with the right authority and the certificate's name: hookd serves, and
    // every connection it holds is encrypted.
    let full = url(
        "localhost",
        &db,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    let hookd = Hookd::start_with(Settings {
        postgres_url: Some(full),
        ..Settings::default()
    });
    assert_eq!(hookd.get("/healthz", "").status, 200);
    let sessions = format!(
        "SELECT count(*) FILTER (WHERE s.ssl) || ' ' || count(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '{}'",
        db.name()
    );
    let counts = server.psql("postgres", &sessions).unwrap();
    let (encrypted, plain) = counts.split_once(' ').unwrap();
    assert!(encrypted.parse::<u32>().unwrap() > 0, "{counts}");
    assert_eq!(plain, "0", "hookd's sessions without TLS");
    drop(hookd);

    // The wrong authority, and a name the certificate does not carry, are refused with
    // the reason; verify-ca checks the authority, not the name; require encrypts and
    // checks nothing.
    let verify = |mode: &str, root: &Path| format!("sslmode={mode}&sslrootcert={}", root.display());
    for (host, query, refused) in [
        (
            "localhost",
            verify("verify-full", &other),
            Some("invalid peer certificate: UnknownIssuer"),
        ),
        (
            "127.0.0.1",
            verify("verify-full", &ca),
            Some("certificate not valid for name"),
        ),
        ("127.0.0.1", verify("verify-ca", &ca), None),
        ("127.0.0.1", "sslmode=require".to_string(), None),
    ] {
        let (ok, text) = migrate(&url(host, &db, &query));
        match refused {
            Some(why) => assert!(!ok && text.contains(why), "{host} {query}: {text}"),
            None => assert!(ok, "{host} {query}: {text}"),
        }
    }
}
