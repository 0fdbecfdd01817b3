//! The command line: help, config checking, token minting, signature verification, and
//! token reload on SIGHUP.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{Hookd, OTHER_USER, Settings, USER};
use sha2::{Digest, Sha256};

fn hookd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(args)
        .output()
        .expect("run hookd")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_command_answers_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["check-config", "--help"],
        &["token", "new", "--help"],
        &["verify", "--help"],
        &["listen", "--help"],
    ] {
        let o = hookd(args);
        assert!(o.status.success(), "{args:?}");
        assert!(stdout(&o).contains("Usage"), "{args:?}: {}", stdout(&o));
    }
    let o = hookd(&["frobnicate"]);
    assert!(!o.status.success());
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn check_config_accepts_the_shipped_configs_and_names_bad_keys() {
    let root = env!("CARGO_MANIFEST_DIR");
    for file in ["config/hookd.toml", "config/dev.toml"] {
        let o = hookd(&["check-config", "--config", &format!("{root}/{file}")]);
        assert!(o.status.success(), "{file}: {}", stderr(&o));
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"nowhere\"\n[delivery]\ntimeoutt = \"5s\"\nworkers = 0\n[limits]\nmax_payload_bytes = \"big\"\n").unwrap();
    let o = hookd(&["check-config", "--config", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for key in [
        "listen",
        "delivery.timeoutt",
        "delivery.workers",
        "limits.max_payload_bytes",
    ] {
        assert!(err.contains(key), "problem with {key} not reported:\n{err}");
    }
    assert!(!err.contains("panicked"));

    let o = hookd(&["check-config", "--config", "/nonexistent/hookd.toml"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/hookd.toml"));
    let o = hookd(&["serve", "--config", "/nonexistent/hookd.toml"]);
    assert!(!o.status.success());
    assert!(!stderr(&o).contains("panicked"));

    // $HOOKD_CONFIG is the fallback when --config is absent.
    let o = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("check-config")
        .env("HOOKD_CONFIG", format!("{root}/config/dev.toml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("dev.toml"));
}

#[test]
fn token_new_prints_a_token_and_its_stanza() {
    let o = hookd(&["token", "new", "--user", "user-9", "--role", "publisher"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let token = out.lines().next().unwrap().trim().to_string();
    assert!(token.len() >= 43, "≥ 32 bytes of entropy: {token}");
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    assert!(out.contains(&format!("sha256 = \"{hash}\"")), "{out}");
    assert!(
        out.contains("user   = \"user-9\"") && out.contains("role   = \"publisher\""),
        "{out}"
    );
    let again = stdout(&hookd(&["token", "new", "--user", "user-9"]));
    assert_ne!(
        again.lines().next(),
        Some(token.as_str()),
        "tokens are random"
    );
    assert!(again.contains("role   = \"user\""));
    let bad = hookd(&["token", "new", "--user", "a b"]);
    assert!(!bad.status.success());
    let bad = hookd(&["token", "new", "--user", "u", "--role", "root"]);
    assert!(!bad.status.success());
}

fn verify(secret: &str, signature: &str, body: &[u8]) -> Option<i32> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["verify", "--secret", secret, "--signature", signature])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    child.wait().unwrap().code()
}

#[test]
fn verify_checks_signatures_over_the_raw_body() {
    use hmac::{Hmac, Mac};
    let body = br#"{"event":{"id":"e"},"webhook":{"id":"w","name":"n"}}"#;
    let mut mac = Hmac::<Sha256>::new_from_slice(b"topsecret").unwrap();
    mac.update(body);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(verify("topsecret", &sig, body), Some(0));
    assert_eq!(verify("wrong", &sig, body), Some(1));
    assert_eq!(verify("topsecret", &sig, b"{}"), Some(1));
    assert_eq!(verify("topsecret", "sha256=nothex", body), Some(1));
    assert_eq!(verify("topsecret", "md5=abc", body), Some(1));
    // From a file, and a missing file is exit 2.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    std::fs::write(&file, body).unwrap();
    let o = hookd(&[
        "verify",
        "--secret",
        "topsecret",
        "--signature",
        &sig,
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let o = hookd(&[
        "verify",
        "--secret",
        "s",
        "--signature",
        &sig,
        "/nonexistent/body",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = hookd(&["verify", "--secret", "s"]);
    assert_eq!(o.status.code(), Some(2), "usage error");
}

#[test]
fn sighup_reloads_tokens_and_keeps_them_on_a_broken_config() {
    let hookd_proc = Hookd::start_with(Settings {
        limits: "max_payload_bytes = 4096".into(),
        ..Settings::default()
    });
    let new_token = "fresh-token-for-reload-test";
    assert_eq!(hookd_proc.get("/api/hooks/webhooks", new_token).status, 401);
    assert_eq!(
        hookd_proc.get("/api/hooks/webhooks", OTHER_USER).status,
        200
    );
    // An event between the two limits: accepted now, refused if 1024 ever applied.
    let padded = format!(r#"{{"pad":"{}"}}"#, "p".repeat(2000));
    hookd_proc.publish("app:connected", "user-123", &padded, None);

    // The new file adds a token, drops user-456's (revokes it), and changes a key that
    // is not a token: only [[tokens]] is reloaded.
    let original = std::fs::read_to_string(&hookd_proc.config_path).unwrap();
    let revoked = format!(
        "[[tokens]]\nuser = \"user-456\"\nrole = \"user\"\nsha256 = \"{}\"\n",
        hex::encode(Sha256::digest(OTHER_USER.as_bytes()))
    );
    assert!(original.contains(&revoked), "{original}");
    assert!(original.contains("max_payload_bytes = 4096"), "{original}");
    let hash = hex::encode(Sha256::digest(new_token.as_bytes()));
    let changed = original
        .replace(&revoked, "")
        .replace("max_payload_bytes = 4096", "max_payload_bytes = 1024");
    std::fs::write(
        &hookd_proc.config_path,
        format!(
            "{changed}\n[[tokens]]\nuser = \"user-789\"\nrole = \"user\"\nsha256 = \"{hash}\"\n"
        ),
    )
    .unwrap();
    hookd_proc.signal("HUP");
    assert!(
        hookd_proc.wait_for_log("tokens reloaded", Duration::from_secs(10)),
        "{}",
        hookd_proc.log()
    );
    assert_eq!(hookd_proc.get("/api/hooks/webhooks", new_token).status, 200);
    assert_eq!(hookd_proc.get("/api/hooks/webhooks", USER).status, 200);
    hookd_proc
        .get("/api/hooks/webhooks", OTHER_USER)
        .assert_error(401, "unauthorized");
    let r = hookd_proc.ingest("app:connected", "user-123", &padded, None);
    assert_eq!(
        r.status, 202,
        "SIGHUP applied max_payload_bytes = 1024, but it reloads only [[tokens]]: {}",
        r.body
    );

    std::fs::write(&hookd_proc.config_path, "this is = not [valid toml").unwrap();
    hookd_proc.signal("HUP");
    assert!(
        hookd_proc.wait_for_log("keeping the old tokens", Duration::from_secs(10)),
        "{}",
        hookd_proc.log()
    );
    assert_eq!(
        hookd_proc.get("/api/hooks/webhooks", new_token).status,
        200,
        "old tokens still work"
    );
    hookd_proc
        .get("/api/hooks/webhooks", OTHER_USER)
        .assert_error(401, "unauthorized");
    assert!(
        !hookd_proc.log().contains(new_token),
        "tokens never reach the log"
    );
}
