//! The dashboard (`/ui/`) end to end: a real hookd, and `tests/ui/dashboard.mjs` driving
//! it in headless Chromium through playwright-core (sign-in, the failing webhook's log,
//! retry, a test event checked at the receiver, recover, phone width, CSP cleanliness,
//! and the operator page an admin token opens).
//!
//! Needs node, `tests/ui/node_modules` (`npm ci` in tests/ui) and /usr/bin/chromium, so
//! it runs only when `HOOKD_UI_TEST` or `CI=true` is set (.ci/run sets both); then
//! anything missing is a failure, not a skip. `HOOKD_SCREENSHOTS=<dir>` is passed through: the
//! script then saves PNGs of the main views there.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{self, ADMIN, Hookd, PUBLISHER, Settings, USER};

/// The whole script normally takes well under a minute; this only stops a hung browser.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);
const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn the_dashboard_works_end_to_end_in_chromium() {
    // Under CI=true the test always runs (and a missing prerequisite fails it).
    if !common::optional_tool(
        std::env::var_os("HOOKD_UI_TEST").is_some(),
        "HOOKD_UI_TEST is not set, so the dashboard browser test does not run \
         (.ci/run sets it; needs node, tests/ui/node_modules and /usr/bin/chromium)",
    ) {
        return;
    }
    let ui_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    check_prerequisites(&ui_dir);

    // One attempt per delivery: the first 500 makes the delivery `failed` at once.
    let hookd = Hookd::start_with(Settings {
        delivery: "retry_schedule = [\"0s\"]\ntimeout = \"5s\"".into(),
        ..Settings::default()
    });

    let mut cmd = Command::new("node");
    cmd.arg(ui_dir.join("dashboard.mjs"))
        .current_dir(&ui_dir)
        .env("HOOKD_URL", format!("http://{}", hookd.addr))
        .env("HOOKD_USER_TOKEN", USER)
        .env("HOOKD_PUBLISHER_TOKEN", PUBLISHER)
        .env("HOOKD_ADMIN_TOKEN", ADMIN)
        .env_remove("HOOKD_SCREENSHOTS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = std::env::var_os("HOOKD_SCREENSHOTS") {
        // Relative paths mean relative to where cargo test was started, not tests/ui.
        let dir = PathBuf::from(dir);
        let dir = if dir.is_absolute() {
            dir
        } else {
            std::env::current_dir().expect("cwd").join(dir)
        };
        cmd.env("HOOKD_SCREENSHOTS", dir);
    }

    let started = Instant::now();
    let mut child = cmd.spawn().expect("start node tests/ui/dashboard.mjs");
    let output = Arc::new(Mutex::new(String::new()));
    let readers = [
        forward(child.stdout.take().expect("stdout"), &output),
        forward(child.stderr.take().expect("stderr"), &output),
    ];
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            for r in readers {
                let _ = r.join();
            }
            panic!(
                "dashboard.mjs did not finish within {SCRIPT_TIMEOUT:?}; its output:\n{}\nhookd log:\n{}",
                output.lock().unwrap(),
                hookd.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for r in readers {
        r.join().expect("output reader");
    }
    println!(
        "dashboard.mjs finished in {:.1} s with {status}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        status.success(),
        "dashboard.mjs failed ({status}); its output:\n{}\nhookd log:\n{}",
        output.lock().unwrap(),
        hookd.log()
    );
}

/// With HOOKD_UI_TEST (or CI=true) set, a missing tool is a broken set-up: fail and say
/// what to do.
fn check_prerequisites(ui_dir: &Path) {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "HOOKD_UI_TEST is set but `node --version` failed ({node:?}); install Node.js 20 or newer"
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "HOOKD_UI_TEST is set but {CHROMIUM} is missing; install it with `apt-get install -y chromium`"
    );
    assert!(
        ui_dir
            .join("node_modules/playwright-core/package.json")
            .exists(),
        "HOOKD_UI_TEST is set but {}/node_modules has no playwright-core; run `npm ci` there",
        ui_dir.display()
    );
}

/// Copies the script's lines to this test's output as they come (shown by the harness on
/// failure, or live with --nocapture) and keeps them for the failure message.
fn forward(
    stream: impl Read + Send + 'static,
    sink: &Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    let sink = Arc::clone(sink);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            println!("  {line}");
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    })
}
