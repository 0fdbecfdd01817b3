//! Unit tests of the config module: defaults, every accepted and refused form, the
//! problem messages and paths, and the shipped config files and docs.

use super::check::line_column;
use super::keys::{self, SECTIONS};
use super::*;
use crate::auth::{MAX_USER_LEN, Role, token_sha256_hex};
use std::net::SocketAddr;
use toml::Table;

const DEV_TOKENS: [(&str, &str, Role); 4] = [
    ("user-123", "dev-user-token-NOT-FOR-PRODUCTION", Role::User),
    (
        "user-456",
        "dev-other-user-token-NOT-FOR-PRODUCTION",
        Role::User,
    ),
    (
        "openwork",
        "dev-publisher-token-NOT-FOR-PRODUCTION",
        Role::Publisher,
    ),
    ("ops", "dev-admin-token-NOT-FOR-PRODUCTION", Role::Admin),
];

fn problems(text: &str) -> Vec<Problem> {
    match Config::from_toml_str(text) {
        Ok(config) => panic!("expected problems for {text:?}, got {config:?}"),
        Err(err) => {
            assert!(err.path.is_none());
            assert!(!err.problems.is_empty());
            err.problems
        }
    }
}

/// Asserts `text` has exactly one problem, at `key`, and returns its message.
fn problem_at(text: &str, key: &str) -> String {
    let problems = problems(text);
    assert_eq!(problems.len(), 1, "{text:?} gave {problems:#?}");
    assert_eq!(problems[0].key, key, "{text:?} gave {problems:#?}");
    problems[0].message.clone()
}

fn ok(text: &str) -> Config {
    match Config::from_toml_str(text) {
        Ok(config) => config,
        Err(err) => panic!("expected {text:?} to be valid, got:\n{err}"),
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn hash_line(token: &str) -> String {
    format!("sha256 = \"{}\"", token_sha256_hex(token))
}

fn token_block(user: &str, role: &str, token: &str) -> String {
    format!(
        "[[tokens]]\nuser = \"{user}\"\nrole = \"{role}\"\n{}\n",
        hash_line(token)
    )
}

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

// ---- defaults -------------------------------------------------------

#[test]
fn empty_file_gives_defaults() {
    let config = ok("");
    assert_eq!(config, Config::default());
    assert_eq!(ok("# only a comment\n\n   \n"), Config::default());
    assert_eq!(ok("[delivery]\n[limits]\n[retention]\n"), Config::default());
}

#[test]
fn default_values() {
    let c = Config::default();
    assert_eq!(c.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/hookd"));
    assert_eq!(c.db_path(), PathBuf::from("/var/lib/hookd/hookd.redb"));
    assert_eq!(c.delivery.timeout, secs(10));
    assert_eq!(
        c.delivery.retry_schedule,
        vec![secs(0), secs(60), secs(300), secs(1800), secs(7200)]
    );
    assert_eq!(c.delivery.workers, 64);
    assert_eq!(c.delivery.max_in_flight_per_webhook, 8);
    assert!(!c.delivery.allow_http);
    assert!(!c.delivery.allow_private_networks);
    assert_eq!(c.delivery.disable_after, secs(5 * 86_400));
    assert_eq!(c.limits.max_webhooks_per_user, 10);
    assert_eq!(c.limits.events_per_minute_per_webhook, 100);
    assert_eq!(c.limits.max_payload_bytes, 262_144);
    assert_eq!(c.retention.events, secs(30 * 86_400));
    assert!(c.tokens.is_empty());
}

// ---- full config ----------------------------------------------------

#[test]
fn full_valid_config() {
    let text = format!(
        r#"
listen = "[::1]:9090"
data_dir = "./data"

[delivery]
timeout = "1500ms"
retry_schedule = ["0s", "30s", "2m"]
workers = 16
max_in_flight_per_webhook = 16
allow_http = true
allow_private_networks = true
disable_after = "12h"

[limits]
max_webhooks_per_user = 3
events_per_minute_per_webhook = 4294967295
max_payload_bytes = 1024

[retention]
events = "7d"

{}
{}"#,
        token_block("user-1", "user", "t1"),
        token_block("svc@example.com:ci_bot.v2", "publisher", "t2"),
    );
    let c = ok(&text);
    assert_eq!(c.listen, "[::1]:9090".parse::<SocketAddr>().unwrap());
    assert_eq!(c.data_dir, PathBuf::from("./data"));
    assert!(c.data_dir.is_relative());
    assert_eq!(c.db_path(), PathBuf::from("./data/hookd.redb"));
    assert_eq!(c.delivery.timeout, Duration::from_millis(1500));
    assert_eq!(
        c.delivery.retry_schedule,
        vec![secs(0), secs(30), secs(120)]
    );
    assert_eq!(c.delivery.workers, 16);
    assert_eq!(c.delivery.max_in_flight_per_webhook, 16);
    assert!(c.delivery.allow_http);
    assert!(c.delivery.allow_private_networks);
    assert_eq!(c.delivery.disable_after, secs(12 * 3600));
    assert_eq!(c.limits.max_webhooks_per_user, 3);
    assert_eq!(c.limits.events_per_minute_per_webhook, u32::MAX);
    assert_eq!(c.limits.max_payload_bytes, 1024);
    assert_eq!(c.retention.events, secs(7 * 86_400));
    assert_eq!(c.tokens.len(), 2);
    assert_eq!(c.tokens[0].user, "user-1");
    assert_eq!(c.tokens[0].role, Role::User);
    assert_eq!(hex::encode(c.tokens[0].sha256), token_sha256_hex("t1"));
    assert_eq!(c.tokens[1].user, "svc@example.com:ci_bot.v2");
    assert_eq!(c.tokens[1].role, Role::Publisher);
    assert_eq!(hex::encode(c.tokens[1].sha256), token_sha256_hex("t2"));
}

/// Renders a config the way an operator would write it.
fn render(c: &Config) -> String {
    let d = &c.delivery;
    let schedule: Vec<String> = d
        .retry_schedule
        .iter()
        .map(|x| format!("\"{}\"", format_duration(*x)))
        .collect();
    let mut text = format!(
        "listen = \"{}\"\ndata_dir = \"{}\"\n[delivery]\ntimeout = \"{}\"\n\
         retry_schedule = [{}]\nworkers = {}\nmax_in_flight_per_webhook = {}\n\
         allow_http = {}\nallow_private_networks = {}\ndisable_after = \"{}\"\n\
         proxy = \"{}\"\n[limits]\nmax_webhooks_per_user = {}\nevents_per_minute_per_webhook = {}\n\
         max_payload_bytes = {}\n[retention]\nevents = \"{}\"\n",
        c.listen,
        c.data_dir.display(),
        format_duration(d.timeout),
        schedule.join(", "),
        d.workers,
        d.max_in_flight_per_webhook,
        d.allow_http,
        d.allow_private_networks,
        format_duration(d.disable_after),
        d.proxy
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        c.limits.max_webhooks_per_user,
        c.limits.events_per_minute_per_webhook,
        c.limits.max_payload_bytes,
        format_duration(c.retention.events),
    );
    for t in &c.tokens {
        text.push_str(&format!(
            "[[tokens]]\nuser = \"{}\"\nrole = \"{}\"\nsha256 = \"{}\"\n",
            t.user,
            t.role,
            hex::encode(t.sha256)
        ));
    }
    text
}

#[test]
fn round_trip_through_text() {
    let mut c = Config::default();
    assert_eq!(ok(&render(&c)), c);
    c.listen = "0.0.0.0:1".parse().unwrap();
    c.data_dir = PathBuf::from("rel/dir");
    c.delivery.timeout = Duration::from_millis(250);
    c.delivery.retry_schedule = vec![secs(0), Duration::from_millis(1), secs(90), secs(86_400)];
    c.delivery.workers = 4096;
    c.delivery.max_in_flight_per_webhook = 1;
    c.delivery.allow_http = true;
    c.delivery.disable_after = secs(3600);
    c.delivery.proxy = Some(EgressProxy {
        host: "[::1]".into(),
        port: 3128,
    });
    c.limits.max_payload_bytes = MAX_PAYLOAD_BYTES;
    c.retention.events = secs(1);
    c.tokens = vec![
        TokenConfig {
            user: "a".into(),
            role: Role::Publisher,
            sha256: [7; 32],
        },
        TokenConfig {
            user: "b".into(),
            role: Role::User,
            sha256: [8; 32],
        },
    ];
    assert_eq!(ok(&render(&c)), c);
}

// ---- durations ------------------------------------------------------

#[test]
fn duration_forms() {
    let cases = [
        ("0s", Duration::ZERO),
        ("0ms", Duration::ZERO),
        ("500ms", Duration::from_millis(500)),
        ("1500ms", Duration::from_millis(1500)),
        ("5s", secs(5)),
        ("007s", secs(7)),
        ("1m", secs(60)),
        ("90m", secs(5400)),
        ("2h", secs(7200)),
        ("5d", secs(5 * 86_400)),
        ("36500d", MAX_DURATION),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_duration(text), Ok(expected), "{text}");
    }
}

#[test]
fn bad_duration_forms() {
    let cases = [
        ("", "empty"),
        (" 5s", "whitespace"),
        ("5s ", "whitespace"),
        ("5 s", "whitespace"),
        ("\t5s", "whitespace"),
        ("5s\n", "whitespace"),
        ("-5s", "negative"),
        ("+5s", "whole number"),
        ("s", "whole number"),
        ("ms", "whole number"),
        ("1.5s", "fractional"),
        ("0.5h", "fractional"),
        ("1,5s", "fractional"),
        ("5", "unit is missing"),
        ("5x", "unknown unit \"x\""),
        ("5sec", "unknown unit \"sec\""),
        ("5min", "unknown unit \"min\""),
        ("5us", "unknown unit \"us\""),
        ("5S", "lowercase"),
        ("5MS", "lowercase"),
        ("1h30m", "one unit"),
        ("1e3s", "one unit"),
        ("\u{ff15}s", "whole number"),
        ("99999999999999999999s", "too large"),
        ("213503982334602d", "too large"),
        ("18446744073709551615s", "too large"),
        ("36501d", "too large"),
        ("876001h", "too large"),
    ];
    for (text, why) in cases {
        let err = parse_duration(text).expect_err(text).to_string();
        assert!(err.contains(why), "{text:?}: {err}");
        assert!(err.contains(&format!("{text:?}")), "{text:?}: {err}");
        assert!(err.contains("ms, s, m, h or d"), "{text:?}: {err}");
        assert!(err.contains("\"500ms\""), "{text:?}: {err}");
    }
}

#[test]
fn format_duration_forms() {
    let cases = [
        (Duration::ZERO, "0s"),
        (Duration::from_millis(1), "1ms"),
        (Duration::from_millis(500), "500ms"),
        (Duration::from_millis(1500), "1500ms"),
        (secs(1), "1s"),
        (secs(90), "90s"),
        (secs(60), "1m"),
        (secs(3600), "1h"),
        (secs(5400), "90m"),
        (secs(86_400), "1d"),
        (secs(5 * 86_400), "5d"),
        (secs(25 * 3600), "25h"),
        (Duration::from_nanos(1500), "1500ns"),
    ];
    for (d, text) in cases {
        assert_eq!(format_duration(d), text);
    }
    // Never panics at the extremes.
    assert!(format_duration(Duration::MAX).ends_with("ns"));
    assert_eq!(format_duration(secs(u64::MAX)), format!("{}s", u64::MAX));
}

#[test]
fn format_is_inverse_of_parse() {
    for text in [
        "0s", "1ms", "999ms", "1s", "59s", "1m", "61m", "1h", "23h", "1d", "36500d",
    ] {
        let d = parse_duration(text).unwrap();
        assert_eq!(format_duration(d), text);
        assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }
    for ms in [
        0u64, 1, 1000, 60_000, 61_000, 3_600_000, 86_400_000, 90_061_001,
    ] {
        let d = Duration::from_millis(ms);
        assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{ms}");
    }
}

#[test]
fn bad_duration_in_config_names_key_and_value() {
    let msg = problem_at("[delivery]\ntimeout = \"10 s\"", "delivery.timeout");
    assert!(msg.contains("\"10 s\""), "{msg}");
    assert!(msg.contains("ms, s, m, h or d"), "{msg}");
    let msg = problem_at("[retention]\nevents = \"1.5d\"", "retention.events");
    assert!(msg.contains("fractional"), "{msg}");
    let msg = problem_at(
        "[delivery]\nretry_schedule = [\"0s\", \"-1m\", \"5m\"]",
        "delivery.retry_schedule[1]",
    );
    assert!(msg.contains("negative"), "{msg}");
    let msg = problem_at(
        "[delivery]\ndisable_after = \"5\"",
        "delivery.disable_after",
    );
    assert!(msg.contains("unit is missing"), "{msg}");
}

// ---- unknown keys ---------------------------------------------------

#[test]
fn unknown_keys_everywhere() {
    let cases = [
        ("listen2 = \"127.0.0.1:1\"", "listen2", Some("listen")),
        (
            "[delivery]\ntimeoutt = \"1s\"",
            "delivery.timeoutt",
            Some("timeout"),
        ),
        ("[limits]\nbogus = 1", "limits.bogus", None),
        (
            "[retention]\nevnts = \"1d\"",
            "retention.evnts",
            Some("events"),
        ),
        (
            "[[tokens]]\nusr = \"a\"\nuser = \"a\"\nrole = \"user\"\nsha256 = \"\"",
            "tokens[0].usr",
            Some("user"),
        ),
        ("[bogus]\nx = 1", "bogus", None),
        ("\"a.b\" = 1", "\"a.b\"", None),
        ("[delivery]\n\"\" = 1", "delivery.\"\"", None),
        ("[delivery.sub]\nx = 1", "delivery.sub", None),
    ];
    for (text, key, hint) in cases {
        let problems = problems(text);
        let problem = problems
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("{text:?}: no problem at {key}: {problems:#?}"));
        assert!(problem.message.starts_with("unknown key"), "{problem:?}");
        assert!(
            problem.message.contains("accepted keys here"),
            "{problem:?}"
        );
        if let Some(hint) = hint {
            assert!(
                problem
                    .message
                    .contains(&format!("did you mean \"{hint}\"")),
                "{problem:?}"
            );
        }
    }
}

#[test]
fn unknown_key_in_second_token() {
    let text = format!(
        "{}{}extra = true\n",
        token_block("a", "user", "1"),
        token_block("b", "user", "2")
    );
    problem_at(&text, "tokens[1].extra");
}

#[test]
fn misplaced_keys_say_where_they_belong() {
    let msg = problem_at("timeout = \"10s\"", "timeout");
    assert!(msg.contains("belongs in [delivery]"), "{msg}");
    let msg = problem_at("[delivery]\nevents = \"1d\"", "delivery.events");
    assert!(msg.contains("belongs in [retention]"), "{msg}");
    let msg = problem_at("[limits]\nlisten = \"127.0.0.1:1\"", "limits.listen");
    assert!(msg.contains("at the top level"), "{msg}");
    let msg = problem_at("sha256 = \"x\"", "sha256");
    assert!(msg.contains("[[tokens]]"), "{msg}");
}

// ---- wrong types ----------------------------------------------------

#[test]
fn wrong_types() {
    let cases = [
        (
            "listen = 8080",
            "listen",
            "expected a string like \"127.0.0.1:8080\", found integer",
        ),
        ("data_dir = 1", "data_dir", "found integer"),
        ("data_dir = [\"a\"]", "data_dir", "found array"),
        (
            "delivery = \"x\"",
            "delivery",
            "expected a table ([delivery]), found string",
        ),
        (
            "limits = 1",
            "limits",
            "expected a table ([limits]), found integer",
        ),
        (
            "retention = []",
            "retention",
            "expected a table ([retention]), found array",
        ),
        ("tokens = \"x\"", "tokens", "found string"),
        ("tokens = 1979-05-27", "tokens", "found datetime"),
        ("[tokens]\nuser = \"a\"", "tokens", "[[tokens]]"),
        ("tokens = [1]", "tokens[0]", "found integer"),
        ("tokens = [[]]", "tokens[0]", "found array"),
        (
            "[delivery]\ntimeout = 10",
            "delivery.timeout",
            "expected a string like \"10s\", found integer",
        ),
        (
            "[delivery]\ntimeout = 1.5",
            "delivery.timeout",
            "expected a string like \"10s\", found float",
        ),
        (
            "[delivery]\ntimeout = true",
            "delivery.timeout",
            "found boolean",
        ),
        (
            "[delivery]\nretry_schedule = \"0s\"",
            "delivery.retry_schedule",
            "expected an array of durations",
        ),
        (
            "[delivery]\nretry_schedule = [0, \"1m\"]",
            "delivery.retry_schedule[0]",
            "expected a string like \"1m\", found integer",
        ),
        (
            "[delivery]\nretry_schedule = [\"0s\", [\"1m\"]]",
            "delivery.retry_schedule[1]",
            "found array",
        ),
        (
            "[delivery]\nworkers = \"64\"",
            "delivery.workers",
            "expected an integer, found string (write 64 without quotes)",
        ),
        (
            "[delivery]\nworkers = 64.0",
            "delivery.workers",
            "expected an integer, found float",
        ),
        (
            "[delivery]\nmax_in_flight_per_webhook = true",
            "delivery.max_in_flight_per_webhook",
            "expected an integer, found boolean",
        ),
        (
            "[delivery]\nallow_http = \"true\"",
            "delivery.allow_http",
            "expected a boolean (true or false), found string (write true without quotes)",
        ),
        (
            "[delivery]\nallow_http = \"yes\"",
            "delivery.allow_http",
            "found string",
        ),
        (
            "[delivery]\nallow_private_networks = 1",
            "delivery.allow_private_networks",
            "expected a boolean (true or false), found integer",
        ),
        (
            "[delivery]\ndisable_after = 5",
            "delivery.disable_after",
            "expected a string like \"5d\", found integer",
        ),
        (
            "[limits]\nmax_webhooks_per_user = \"10\"",
            "limits.max_webhooks_per_user",
            "expected an integer, found string",
        ),
        (
            "[limits]\nevents_per_minute_per_webhook = {}",
            "limits.events_per_minute_per_webhook",
            "expected an integer, found table",
        ),
        (
            "[limits]\nmax_payload_bytes = 1e6",
            "limits.max_payload_bytes",
            "expected an integer, found float",
        ),
        (
            "[retention]\nevents = 30",
            "retention.events",
            "expected a string like \"30d\", found integer",
        ),
        (
            "[[tokens]]\nuser = 1\nrole = \"user\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"",
            "tokens[0].user",
            "found integer",
        ),
        (
            "[[tokens]]\nuser = \"a\"\nrole = 1\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"",
            "tokens[0].role",
            "found integer",
        ),
        (
            "[[tokens]]\nuser = \"a\"\nrole = \"user\"\nsha256 = 1",
            "tokens[0].sha256",
            "found integer",
        ),
    ];
    for (text, key, expected) in cases {
        let msg = problem_at(text, key);
        assert!(msg.contains(expected), "{text:?}: {msg}");
    }
}

// ---- ranges and values ---------------------------------------------

#[test]
fn listen_and_data_dir_values() {
    assert_eq!(ok("listen = \"0.0.0.0:80\"").listen.port(), 80);
    assert!(ok("listen = \"[::]:8080\"").listen.is_ipv6());
    for bad in [
        "localhost:8080",
        "127.0.0.1",
        "127.0.0.1:99999",
        "",
        ":8080",
    ] {
        let msg = problem_at(&format!("listen = \"{bad}\""), "listen");
        assert!(msg.contains(&format!("{bad:?}")), "{msg}");
        assert!(msg.contains("IP:PORT"), "{msg}");
    }
    assert!(problem_at("data_dir = \"\"", "data_dir").contains("empty"));
    assert!(problem_at("data_dir = \"a\\u0000b\"", "data_dir").contains("NUL"));
    assert_eq!(ok("data_dir = \"data\"").data_dir, PathBuf::from("data"));
}

#[test]
fn timeout_range() {
    assert_eq!(
        ok("[delivery]\ntimeout = \"1ms\"").delivery.timeout,
        Duration::from_millis(1)
    );
    assert_eq!(
        ok("[delivery]\ntimeout = \"1h\"").delivery.timeout,
        secs(3600)
    );
    assert_eq!(
        ok("[delivery]\ntimeout = \"3600s\"").delivery.timeout,
        secs(3600)
    );
    let msg = problem_at("[delivery]\ntimeout = \"0s\"", "delivery.timeout");
    assert!(msg.contains("greater than 0"), "{msg}");
    let msg = problem_at("[delivery]\ntimeout = \"3600001ms\"", "delivery.timeout");
    assert!(msg.contains("at most \"1h\""), "{msg}");
    let msg = problem_at("[delivery]\ntimeout = \"2d\"", "delivery.timeout");
    assert!(msg.contains("found \"2d\""), "{msg}");
}

#[test]
fn retry_schedule_range() {
    let msg = problem_at("[delivery]\nretry_schedule = []", "delivery.retry_schedule");
    assert!(msg.contains("must not be empty"), "{msg}");
    let list = |n: usize| vec!["\"1s\""; n].join(", ");
    let c = ok(&format!("[delivery]\nretry_schedule = [{}]", list(100)));
    assert_eq!(c.delivery.retry_schedule, vec![secs(1); 100]);
    let msg = problem_at(
        &format!("[delivery]\nretry_schedule = [{}]", list(101)),
        "delivery.retry_schedule",
    );
    assert!(
        msg.contains("101 entries") && msg.contains("at most 100"),
        "{msg}"
    );
    assert_eq!(
        ok("[delivery]\nretry_schedule = [\"0s\"]")
            .delivery
            .retry_schedule,
        vec![Duration::ZERO]
    );
    // Zero is fine anywhere; the order is not constrained.
    assert_eq!(
        ok("[delivery]\nretry_schedule = [\"1h\", \"0s\", \"0ms\"]")
            .delivery
            .retry_schedule,
        vec![secs(3600), Duration::ZERO, Duration::ZERO]
    );
    // Every bad entry is reported.
    let keys: Vec<String> = problems("[delivery]\nretry_schedule = [\"x\", \"0s\", 5, \"1.5m\"]")
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(
        keys,
        [
            "delivery.retry_schedule[0]",
            "delivery.retry_schedule[2]",
            "delivery.retry_schedule[3]"
        ]
    );
}

#[test]
fn workers_and_in_flight_ranges() {
    assert_eq!(ok("[delivery]\nworkers = 4096").delivery.workers, 4096);
    for bad in [
        "0",
        "-1",
        "4097",
        "-9223372036854775808",
        "9223372036854775807",
    ] {
        let msg = problem_at(&format!("[delivery]\nworkers = {bad}"), "delivery.workers");
        assert!(msg.contains("between 1 and 4096"), "{msg}");
        assert!(msg.contains(&format!("found {bad}")), "{msg}");
    }
    let msg = problem_at(
        "[delivery]\nmax_in_flight_per_webhook = 0",
        "delivery.max_in_flight_per_webhook",
    );
    assert!(msg.contains("between 1 and 4096"), "{msg}");
    let msg = problem_at(
        "[delivery]\nworkers = 4\nmax_in_flight_per_webhook = 5",
        "delivery.max_in_flight_per_webhook",
    );
    assert!(
        msg.contains("must not exceed delivery.workers (4), found 5"),
        "{msg}"
    );
    // Against the default worker count.
    let msg = problem_at(
        "[delivery]\nmax_in_flight_per_webhook = 65",
        "delivery.max_in_flight_per_webhook",
    );
    assert!(msg.contains("(64)"), "{msg}");
    let c = ok("[delivery]\nworkers = 4\nmax_in_flight_per_webhook = 4");
    assert_eq!(c.delivery.max_in_flight_per_webhook, 4);
    // The default shrinks to fit a small pool instead of failing.
    let c = ok("[delivery]\nworkers = 2");
    assert_eq!(c.delivery.max_in_flight_per_webhook, 2);
    // A bad workers value is reported once, with no cross-field noise.
    problem_at(
        "[delivery]\nworkers = 0\nmax_in_flight_per_webhook = 8",
        "delivery.workers",
    );
}

#[test]
fn other_ranges() {
    let msg = problem_at(
        "[delivery]\ndisable_after = \"0d\"",
        "delivery.disable_after",
    );
    assert!(msg.contains("greater than 0"), "{msg}");
    assert_eq!(
        ok("[delivery]\ndisable_after = \"36500d\"")
            .delivery
            .disable_after,
        MAX_DURATION
    );
    let msg = problem_at("[retention]\nevents = \"0ms\"", "retention.events");
    assert!(msg.contains("greater than 0"), "{msg}");
    let msg = problem_at(
        "[limits]\nmax_webhooks_per_user = 0",
        "limits.max_webhooks_per_user",
    );
    assert!(msg.contains("at least 1, found 0"), "{msg}");
    assert_eq!(
        ok("[limits]\nmax_webhooks_per_user = 1")
            .limits
            .max_webhooks_per_user,
        1
    );
    for bad in ["0", "-5", "4294967296"] {
        let msg = problem_at(
            &format!("[limits]\nevents_per_minute_per_webhook = {bad}"),
            "limits.events_per_minute_per_webhook",
        );
        assert!(msg.contains("between 1 and 4294967295"), "{msg}");
    }
    for good in [1024usize, 262_144, MAX_PAYLOAD_BYTES] {
        let c = ok(&format!("[limits]\nmax_payload_bytes = {good}"));
        assert_eq!(c.limits.max_payload_bytes, good);
    }
    for bad in [0, 1023, MAX_PAYLOAD_BYTES + 1] {
        let msg = problem_at(
            &format!("[limits]\nmax_payload_bytes = {bad}"),
            "limits.max_payload_bytes",
        );
        assert!(msg.contains("between 1024 and 67108864"), "{msg}");
        assert!(msg.contains("1 KiB to 64 MiB"), "{msg}");
    }
}

#[test]
fn proxy_values() {
    assert_eq!(Config::default().delivery.proxy, None);
    assert_eq!(ok("[delivery]\nproxy = \"\"").delivery.proxy, None);
    for (text, host, port) in [
        ("http://proxy.internal:3128", "proxy.internal", 3128),
        ("http://proxy.internal:3128/", "proxy.internal", 3128),
        ("http://10.0.0.5:8080", "10.0.0.5", 8080),
        ("http://[fd00::5]:3128", "[fd00::5]", 3128),
    ] {
        let proxy = ok(&format!("[delivery]\nproxy = \"{text}\""))
            .delivery
            .proxy
            .unwrap_or_else(|| panic!("{text}: no proxy"));
        assert_eq!((proxy.host.as_str(), proxy.port), (host, port), "{text}");
        assert_eq!(proxy.to_string(), text.trim_end_matches('/'));
    }
    for (bad, says) in [
        ("proxy.internal:3128", "expected a URL"),
        ("https://proxy.internal:3128", "must be an http:// URL"),
        ("socks5://proxy.internal:1080", "must be an http:// URL"),
        ("http://proxy.internal", "has no port"),
        ("http://proxy.internal:0", "port 0"),
        ("http://user:pw@proxy.internal:3128", "credentials"),
        ("http://proxy.internal:3128/path", "path or query"),
        ("http://proxy.internal:3128/?x=1", "path or query"),
        ("http://[fd00::zz]:3128", "invalid host"),
        ("http://a..b:3128", "invalid host"),
        ("not a url", "not a URL"),
    ] {
        let msg = problem_at(&format!("[delivery]\nproxy = \"{bad}\""), "delivery.proxy");
        assert!(msg.contains(says), "{bad}: {msg}");
    }
    let msg = problem_at("[delivery]\nproxy = 3128", "delivery.proxy");
    assert!(msg.contains("expected a string"), "{msg}");
}

#[test]
fn token_user_values() {
    let block = |user: &str| {
        format!(
            "[[tokens]]\nuser = {user:?}\nrole = \"user\"\n{}",
            hash_line("t")
        )
    };
    let longest = "a".repeat(MAX_USER_LEN);
    for good in ["u", "A-z_0.9:x@y", longest.as_str()] {
        assert_eq!(ok(&block(good)).tokens[0].user, good);
    }
    let msg = problem_at(&block(""), "tokens[0].user");
    assert!(msg.contains("must not be empty"), "{msg}");
    let msg = problem_at(&block(&"a".repeat(MAX_USER_LEN + 1)), "tokens[0].user");
    assert!(msg.contains("129 characters"), "{msg}");
    for (bad, c) in [
        ("a b", "' '"),
        ("a/b", "'/'"),
        ("é", "'é'"),
        ("a\nb", "'\\n'"),
    ] {
        let msg = problem_at(&block(bad), "tokens[0].user");
        assert!(msg.contains(c), "{bad:?}: {msg}");
        assert!(msg.contains(". _ : @ -"), "{msg}");
    }
}

#[test]
fn token_required_keys() {
    let problems = problems("[[tokens]]\n");
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["tokens[0].user", "tokens[0].role", "tokens[0].sha256"]
    );
    assert!(
        problems
            .iter()
            .all(|p| p.message.starts_with("missing required key"))
    );
    assert!(ok("tokens = []").tokens.is_empty());
}

// ---- sha256 ---------------------------------------------------------

#[test]
fn token_sha256_validation() {
    let block = |sha: &str| format!("[[tokens]]\nuser = \"u\"\nrole = \"user\"\nsha256 = {sha:?}");
    let good = token_sha256_hex("secret");
    let c = ok(&block(&good));
    assert_eq!(c.tokens[0].sha256.to_vec(), hex::decode(&good).unwrap());

    let msg = problem_at(&block(&good.to_uppercase()), "tokens[0].sha256");
    assert!(msg.contains("uppercase"), "{msg}");
    let msg = problem_at(&block(&good[..63]), "tokens[0].sha256");
    assert!(msg.contains("wrong length: 63"), "{msg}");
    let msg = problem_at(&block(&format!("{good}0")), "tokens[0].sha256");
    assert!(msg.contains("wrong length: 65"), "{msg}");
    let msg = problem_at(&block(""), "tokens[0].sha256");
    assert!(msg.contains("wrong length: 0"), "{msg}");
    let non_hex = format!("{}g", &good[..63]);
    let msg = problem_at(&block(&non_hex), "tokens[0].sha256");
    assert!(msg.contains("non-hex character at position 64"), "{msg}");
    let multibyte = format!("{}é", &good[..63]);
    let msg = problem_at(&block(&multibyte), "tokens[0].sha256");
    assert!(msg.contains("non-hex"), "{msg}");
    // A pasted plaintext token is never echoed back.
    let pasted = "my-very-secret-token-value";
    let msg = problem_at(&block(pasted), "tokens[0].sha256");
    assert!(!msg.contains(pasted), "{msg}");
    assert!(msg.contains("never the token itself"), "{msg}");
}

#[test]
fn token_sha256_hex_known_vectors() {
    assert_eq!(
        token_sha256_hex(""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        token_sha256_hex("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn token_debug_hides_hash() {
    let hash = token_sha256_hex("secret");
    let c = ok(&format!(
        "[[tokens]]\nuser = \"u\"\nrole = \"publisher\"\nsha256 = \"{hash}\""
    ));
    let debug = format!("{:?}", c.tokens[0]);
    assert!(!debug.contains(&hash), "{debug}");
    assert!(!debug.contains(&hash[..9]), "{debug}");
    assert!(debug.contains(&format!("{}…", &hash[..8])), "{debug}");
    assert!(
        debug.contains("\"u\"") && debug.contains("Publisher"),
        "{debug}"
    );
    let config_debug = format!("{c:?}");
    assert!(!config_debug.contains(&hash), "{config_debug}");
}

#[test]
fn duplicate_tokens() {
    let text = format!(
        "{}{}{}",
        token_block("a", "user", "same"),
        token_block("b", "user", "other"),
        token_block("c", "publisher", "same"),
    );
    let msg = problem_at(&text, "tokens[2].sha256");
    assert!(
        msg.contains("duplicate") && msg.contains("tokens[0]"),
        "{msg}"
    );

    // Detected even when the first holder of the hash has other problems.
    let text = format!(
        "{}{}",
        token_block("bad user", "user", "same"),
        token_block("c", "user", "same"),
    );
    let keys: Vec<String> = problems(&text).into_iter().map(|p| p.key).collect();
    assert_eq!(keys, ["tokens[0].user", "tokens[1].sha256"]);

    // The same user may hold several different tokens.
    let text = format!(
        "{}{}",
        token_block("a", "user", "one"),
        token_block("a", "publisher", "two"),
    );
    assert_eq!(ok(&text).tokens.len(), 2);
}

// ---- roles ----------------------------------------------------------

#[test]
fn role_parsing() {
    assert_eq!("user".parse::<Role>(), Ok(Role::User));
    assert_eq!("publisher".parse::<Role>(), Ok(Role::Publisher));
    for role in [Role::User, Role::Publisher, Role::Admin] {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        assert_eq!(role.to_string(), role.as_str());
    }
    for bad in ["User", "PUBLISHER", "", " user", "root"] {
        let err = bad.parse::<Role>().unwrap_err().to_string();
        assert!(err.contains(&format!("{bad:?}")), "{err}");
        assert!(
            err.contains("accepted roles: \"user\", \"publisher\", \"admin\""),
            "{err}"
        );
    }
    let text = format!(
        "[[tokens]]\nuser = \"u\"\nrole = \"root\"\n{}",
        hash_line("t")
    );
    let msg = problem_at(&text, "tokens[0].role");
    assert!(
        msg.contains("root") && msg.contains("accepted roles"),
        "{msg}"
    );
}

// ---- many problems at once ------------------------------------------

#[test]
fn collects_all_problems() {
    let text = r#"
listen = "nope"
listen2 = 1

[delivery]
timeout = "0s"
retry_schedule = ["0s", "1x"]
workers = 8
max_in_flight_per_webhook = 9
allow_http = "no"
timeoutt = "1s"

[limits]
max_payload_bytes = 1

[retention]
events = 30

[[tokens]]
user = ""
role = "root"
sha256 = "ABC"
"#;
    let err = Config::from_toml_str(text).unwrap_err();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    let expected = [
        "listen2",
        "listen",
        "delivery.timeoutt",
        "delivery.timeout",
        "delivery.retry_schedule[1]",
        "delivery.max_in_flight_per_webhook",
        "delivery.allow_http",
        "limits.max_payload_bytes",
        "retention.events",
        "tokens[0].user",
        "tokens[0].role",
        "tokens[0].sha256",
    ];
    assert_eq!(keys, expected);
    let shown = err.to_string();
    assert_eq!(shown.lines().count(), expected.len(), "{shown}");
    for (line, key) in shown.lines().zip(expected) {
        assert!(line.starts_with(&format!("{key}: ")), "{line}");
    }
}

// ---- syntax errors and files ----------------------------------------

#[test]
fn syntax_error_is_one_problem_with_position() {
    let problems = problems("listen = \"127.0.0.1:8080\"\ndata_dir = \n");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "");
    assert!(
        problems[0]
            .message
            .starts_with("TOML syntax error at line 2, column"),
        "{:?}",
        problems[0]
    );
    assert!(!problems[0].message.contains('\n'));

    let problems = problems_of("a = 1\na = 2\n");
    assert_eq!(problems.len(), 1);
    assert!(problems[0].message.contains("line 2"), "{:?}", problems[0]);

    // The offending line is not echoed (it might hold a secret).
    let problems = problems_of("[[tokens]]\nsha256 = super-secret-token\n");
    assert_eq!(problems.len(), 1);
    assert!(
        !problems[0].message.contains("super-secret-token"),
        "{:?}",
        problems[0]
    );
}

fn problems_of(text: &str) -> Vec<Problem> {
    problems(text)
}

#[test]
fn line_column_is_safe() {
    assert_eq!(line_column("", 0), (1, 1));
    assert_eq!(line_column("", 10), (1, 1));
    assert_eq!(line_column("ab\ncd", 4), (2, 2));
    assert_eq!(line_column("é\né", 4), (2, 2));
    assert_eq!(line_column("é", 1), (1, 2));
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let err = Config::load(&path).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert_eq!(err.problems[0].key, "");
    let shown = path.display().to_string();
    assert!(err.problems[0].message.contains(&shown), "{err}");
    assert!(err.problems[0].message.contains("does not exist"), "{err}");
    assert_eq!(err.path.as_deref(), Some(path.as_path()));
    assert!(err.to_string().contains(&shown));

    // A directory is not a readable file either.
    let err = Config::load(dir.path()).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(
        err.problems[0]
            .message
            .starts_with("cannot read config file"),
        "{err}"
    );
}

#[test]
fn load_reports_path_in_display() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookd.toml");
    std::fs::write(&path, "[delivery]\ntimeout = \"0s\"\nworkers = 0\n").unwrap();
    let err = Config::load(&path).unwrap_err();
    let shown = err.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert!(
        lines[0].starts_with(&format!("{}: delivery.timeout: ", path.display())),
        "{shown}"
    );
    assert!(
        lines[1].starts_with(&format!("{}: delivery.workers: ", path.display())),
        "{shown}"
    );

    std::fs::write(&path, "listen = \"127.0.0.1:9\"\n").unwrap();
    assert_eq!(Config::load(&path).unwrap().listen.port(), 9);

    std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert_eq!(err.problems.len(), 1);
}

#[test]
fn config_error_display_without_path() {
    let err = ConfigError {
        path: None,
        problems: vec![
            Problem {
                key: "a.b".into(),
                message: "bad".into(),
            },
            Problem {
                key: String::new(),
                message: "whole file".into(),
            },
        ],
    };
    assert_eq!(err.to_string(), "a.b: bad\nwhole file");
    let err = ConfigError {
        path: Some(PathBuf::from("/etc/hookd.toml")),
        problems: err.problems,
    };
    assert_eq!(
        err.to_string(),
        "/etc/hookd.toml: a.b: bad\n/etc/hookd.toml: whole file"
    );
}

// ---- shipped configs ------------------------------------------------

#[test]
fn shipped_production_config_is_all_defaults() {
    let path = manifest_path("config/hookd.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config, Config::default());

    // Every key is spelled out, at exactly the default written in keys.rs.
    let text = std::fs::read_to_string(&path).unwrap();
    let root: Table = toml::from_str(&text).unwrap();
    for section in SECTIONS.iter().filter(|s| s.name != keys::TOKENS.name) {
        let table = if section.name.is_empty() {
            &root
        } else {
            root[section.name].as_table().unwrap()
        };
        for key in section.keys {
            let name = format!("{}.{}", section.name, key.name);
            let value = table
                .get(key.name)
                .unwrap_or_else(|| panic!("missing {name}"));
            let default: Table = toml::from_str(&format!("v = {}", key.default.unwrap())).unwrap();
            assert_eq!(value, &default["v"], "{name}");
        }
    }
    assert!(!root.contains_key("tokens"));
    assert!(text.contains("hookd token new --user USER --role user"));
}

/// The doc whose configuration table lists every key with its default, and its heading.
const CONFIG_DOC: &str = "docs/operations.md";
const CONFIG_HEADING: &str = "\n## Configuration reference\n";

/// The rows `| `key` | default | meaning |` of the doc's configuration table.
fn doc_table_rows() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(manifest_path(CONFIG_DOC)).unwrap();
    let section = text
        .split(CONFIG_HEADING)
        .nth(1)
        .unwrap_or_else(|| panic!("{CONFIG_DOC} has no {CONFIG_HEADING:?}"));
    let section = section.split("\n## ").next().unwrap_or_default();
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line
                .trim_matches('|')
                .splitn(3, " | ")
                .map(str::trim)
                .collect();
            assert_eq!(cells.len(), 3, "{line}");
            let key = cells[0].trim_matches('`').to_owned();
            (key, cells[1].to_owned(), cells[2].to_owned())
        })
        .collect()
}

#[test]
fn doc_config_table_matches_the_keys() {
    let rows = doc_table_rows();
    let documented: Vec<(&str, &str)> = rows
        .iter()
        .map(|(key, default, _)| (key.as_str(), default.as_str()))
        .collect();
    let mut expected: Vec<(String, String)> = Vec::new();
    for section in SECTIONS.iter().filter(|s| s.name != keys::TOKENS.name) {
        for key in section.keys {
            let name = if section.name.is_empty() {
                key.name.to_owned()
            } else {
                format!("{}.{}", section.name, key.name)
            };
            expected.push((name, format!("`{}`", key.default.unwrap())));
        }
    }
    expected.push(("[[tokens]]".to_owned(), "none".to_owned()));
    let expected: Vec<(&str, &str)> = expected
        .iter()
        .map(|(k, d)| (k.as_str(), d.as_str()))
        .collect();
    assert_eq!(documented, expected, "{CONFIG_DOC} ## Configuration table");

    // The [[tokens]] row names every key of a token and every role.
    let (_, _, tokens) = rows.last().unwrap();
    for key in keys::TOKENS.keys {
        assert!(tokens.contains(&format!("`{}`", key.name)), "{tokens}");
    }
    for role in Role::ALL {
        assert!(tokens.contains(&format!("\"{role}\"")), "{tokens}");
    }
}

#[test]
fn shipped_dev_config_loads_with_dev_tokens() {
    let path = manifest_path("config/dev.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.listen, Config::default().listen);
    assert_eq!(config.data_dir, PathBuf::from("./data"));
    assert!(config.delivery.allow_http);
    assert!(config.delivery.allow_private_networks);
    assert_eq!(config.tokens.len(), DEV_TOKENS.len());
    for (token, (user, plain, role)) in config.tokens.iter().zip(DEV_TOKENS) {
        assert_eq!(token.user, user);
        assert_eq!(token.role, role);
        assert_eq!(hex::encode(token.sha256), token_sha256_hex(plain));
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("DEV ONLY"));
    for (_, plain, _) in DEV_TOKENS {
        assert!(text.contains(plain), "plain token {plain} not documented");
    }
}

// ---- robustness -----------------------------------------------------

#[test]
fn never_panics_on_junk() {
    // A small deterministic generator: no extra crates needed.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let pieces = [
        "[delivery]\n",
        "[limits]\n",
        "[retention]\n",
        "[[tokens]]\n",
        "[tokens]\n",
        "timeout = ",
        "workers = ",
        "retry_schedule = ",
        "user = ",
        "sha256 = ",
        "role = ",
        "listen = ",
        "data_dir = ",
        "events = ",
        "\"1s\"",
        "\"-1s\"",
        "9999999999999999999",
        "-1",
        "0",
        "[\"0s\", 1]",
        "{ a = 1 }",
        "true",
        "\"é\"",
        "\n",
        "=",
        "\"",
        "[",
        "]",
        "max_in_flight_per_webhook = ",
        "max_payload_bytes = ",
        "1979-05-27T07:32:00Z",
    ];
    for _ in 0..3000 {
        let mut text = String::new();
        for _ in 0..(next() % 12) {
            let i = usize::try_from(next() % pieces.len() as u64).unwrap();
            text.push_str(pieces[i]);
        }
        let _ = Config::from_toml_str(&text);
        let mut junk = String::new();
        for _ in 0..(next() % 8) {
            let c = char::from_u32(u32::try_from(next() % 0x3000).unwrap()).unwrap_or('x');
            junk.push(c);
        }
        let _ = parse_duration(&junk);
        let _ = Config::from_toml_str(&junk);
    }
}

// ---- networks ---------------------------------------------------------

#[test]
fn allowed_networks_forms() {
    let c = ok("[delivery]\nallowed_networks = [\"10.1.0.0/16\", \"fd00::/8\", \"10.0.0.1/8\"]");
    let shown: Vec<String> = c
        .delivery
        .allowed_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    // Host bits are allowed, as they always were, and mean the whole network.
    assert_eq!(shown, ["10.1.0.0/16", "fd00::/8", "10.0.0.0/8"]);
    // "010.0.0.0/8" is taken by ipnet's own parser but never was by hookd.
    for bad in ["010.0.0.0/8", "10.0.0.0", "x/8", "10.0.0.0/"] {
        let msg = problem_at(
            &format!("[delivery]\nallowed_networks = [\"{bad}\"]"),
            "delivery.allowed_networks[0]",
        );
        assert!(msg.contains("is not a CIDR network like"), "{bad}: {msg}");
    }
    let msg = problem_at(
        "[delivery]\nallowed_networks = [\"1.0.0.0/8\", \"::/129\"]",
        "delivery.allowed_networks[1]",
    );
    assert_eq!(msg, "prefix /129 is longer than 128 bits in \"::/129\"");
    let msg = problem_at(
        "[delivery]\nallowed_networks = \"10.0.0.0/8\"",
        "delivery.allowed_networks",
    );
    assert!(msg.contains("expected an array of CIDR networks"), "{msg}");
}

#[test]
fn a_retry_schedule_outliving_the_retention_is_a_warning() {
    assert_eq!(Config::default().warnings(), Vec::<String>::new());
    let c = Config::from_toml_str(
        "[delivery]\nretry_schedule = [\"0s\", \"2h\"]\n[retention]\nevents = \"1h\"\n",
    )
    .expect("valid config");
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("spans 2h"), "{}", warnings[0]);
}

#[test]
fn store_keys_take_sizes_and_durations() {
    let c =
        Config::from_toml_str("[store]\nmin_free_space = \"1GiB\"\nmax_unavailable = \"30s\"\n")
            .expect("valid config");
    assert_eq!(c.store.min_free_space, 1 << 30);
    assert_eq!(c.store.max_unavailable, Duration::from_secs(30));
    assert_eq!(Config::default().store.min_free_space, 256 << 20);
    let e = Config::from_toml_str("[store]\nmin_free_space = \"lots\"\n").expect_err("refused");
    assert!(e.to_string().contains("store.min_free_space"), "{e}");
}

#[test]
fn notification_keys_follow_the_destination_rules() {
    let defaults = Config::default().notifications;
    assert_eq!((defaults.url, defaults.secret), (None, None));

    let c =
        ok("[notifications]\nurl = \"https://ops.example.com/hookd\"\nsecret = \"whsec_AAEC\"\n");
    assert_eq!(
        c.notifications.url.as_deref(),
        Some("https://ops.example.com/hookd")
    );
    let secret = c.notifications.secret.clone().expect("a secret");
    assert_eq!(secret.expose(), "whsec_AAEC");
    assert!(
        !format!("{c:?}").contains("whsec_AAEC"),
        "the secret never shows in Debug"
    );
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());

    // The URL meets the same rules as a webhook's: https only unless allow_http, no
    // literal private address unless allowed.
    let m = problem_at(
        "[notifications]\nurl = \"http://ops.example.com/\"\n",
        "notifications.url",
    );
    assert!(m.contains("delivery.allow_http"), "{m}");
    let m = problem_at(
        "[notifications]\nurl = \"https://10.1.2.3/hook\"\n",
        "notifications.url",
    );
    assert!(m.contains("private"), "{m}");
    let m = problem_at("[notifications]\nurl = \"ftp://x/\"\n", "notifications.url");
    assert!(m.contains("https://"), "{m}");
    ok(
        "[delivery]\nallowed_networks = [\"10.1.0.0/16\"]\n[notifications]\nurl = \"https://10.1.2.3/hook\"\n",
    );
    ok(
        "[delivery]\nallow_http = true\nallow_private_networks = true\n[notifications]\nurl = \"http://127.0.0.1:9/n\"\n",
    );

    problem_at("[notifications]\nurl = 5\n", "notifications.url");
    let long = "s".repeat(257);
    let m = problem_at(
        &format!("[notifications]\nsecret = \"{long}\"\n"),
        "notifications.secret",
    );
    assert!(!m.contains(&long), "a refused secret is not echoed: {m}");
    let m = problem_at("[notifications]\nsecert = \"x\"\n", "notifications.secert");
    assert!(m.contains("did you mean \"secret\""), "{m}");

    // Half a configuration is valid but worth a warning.
    let unsigned = ok("[notifications]\nurl = \"https://ops.example.com/\"\n");
    assert!(
        unsigned.warnings()[0].contains("unsigned"),
        "{:?}",
        unsigned.warnings()
    );
    let idle = ok("[notifications]\nsecret = \"whsec_AAEC\"\n");
    assert!(idle.warnings()[0].contains("no notification is sent"));
}

#[test]
fn postgres_backend_needs_a_url_which_the_environment_may_give() {
    let message = problem_at("[store]\nbackend = \"postgres\"\n", "store.postgres_url");
    assert!(message.contains("HOOKD_POSTGRES_URL"), "{message}");
    // The environment's URL stands in for the file's (Config::load reads it).
    let url = "postgres://hookd:secret@127.0.0.1:5432/hookd".to_owned();
    let config = check::check("[store]\nbackend = \"postgres\"\n", Some(url.clone()))
        .expect("the environment's URL suffices");
    assert_eq!(config.store.backend, Backend::Postgres);
    assert_eq!(config.store.postgres_url.as_deref(), Some(url.as_str()));
    // … and overrides the file's.
    let text = "[store]\nbackend = \"postgres\"\npostgres_url = \"postgres://a@b/c\"\n";
    let config = check::check(text, Some(url.clone())).expect("valid");
    assert_eq!(config.store.postgres_url, Some(url));
    assert_eq!(Config::default().store.backend, Backend::Redb);
    // A refused environment URL is one problem, not also a missing URL.
    let problems = check::check(
        "[store]\nbackend = \"postgres\"\n",
        Some("mysql://x".into()),
    )
    .expect_err("refused");
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

#[test]
fn a_refused_postgres_url_is_not_echoed() {
    let text = "[store]\npostgres_url = \"postgres://u:hunter2@h:notaport/db\"\n";
    let message = problem_at(text, "store.postgres_url");
    assert!(!message.contains("hunter2"), "{message}");
    let message = problem_at(
        "[store]\npostgres_url = \"mysql://u:hunter2@h/db\"\n",
        "store.postgres_url",
    );
    assert!(
        message.contains("postgres://") && !message.contains("hunter2"),
        "{message}"
    );
    let message = problem_at("[store]\nbackend = \"postgresql\"\n", "store.backend");
    assert!(message.contains("did you mean \"postgres\""), "{message}");
}

#[test]
fn cluster_keys() {
    let config = ok("[cluster]\nnode_id = \"node-a.1\"\nlease = \"3s\"\n");
    assert_eq!(config.cluster.node_id.as_deref(), Some("node-a.1"));
    assert_eq!(config.cluster.node_name(), "node-a.1");
    assert_eq!(config.cluster.lease, secs(3));
    problem_at("[cluster]\nnode_id = \"a b\"\n", "cluster.node_id");
    let message = problem_at("[cluster]\nlease = \"500ms\"\n", "cluster.lease");
    assert!(message.contains("at least 1s"), "{message}");
    problem_at("[cluster]\nlease = \"11m\"\n", "cluster.lease");
    // Unnamed nodes on one host still differ: a random suffix follows the host name.
    let unnamed = Config::default().cluster;
    assert_ne!(unnamed.node_name(), unnamed.node_name());
}

#[test]
fn postgres_urls_take_every_sslmode_the_backend_speaks() {
    // The backend reads libpq's sslmode values, which tokio-postgres alone does not
    // (verify-ca, verify-full): the check must read the URL as the backend will.
    for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
        let text = format!(
            "[store]\nbackend = \"postgres\"\npostgres_url = \"postgres://u:pw@db.internal:5432/hookd?sslmode={mode}\"\n"
        );
        let config = ok(&text);
        assert!(config.store.postgres_url.is_some(), "{mode}");
    }
    let message = problem_at(
        "[store]\npostgres_url = \"postgres://u:hunter2@h/db?sslmode=verify-everything\"\n",
        "store.postgres_url",
    );
    assert!(
        message.contains("sslmode") && !message.contains("hunter2"),
        "{message}"
    );
    let message = problem_at(
        "[store]\npostgres_url = \"postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem\"\n",
        "store.postgres_url",
    );
    assert!(message.contains("sslrootcert"), "{message}");
}
