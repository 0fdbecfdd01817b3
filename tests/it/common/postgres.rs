//! The suite on PostgreSQL (`HOOKD_TEST_STORE=postgres`): one throwaway PostgreSQL server
//! per test process, started at the first use, and a fresh database for every hookd the
//! harness starts (`Hookd::start*`), so tests stay as independent as with their own redb
//! file. Cluster tests share one [`database`] between several [`node`]s.
//!
//! The server: PostgreSQL's own binaries (the highest `/usr/lib/postgresql/<v>/bin`, else
//! `pg_config --bindir`; `HOOKD_TEST_PG_BINDIR` overrides), a cluster made by `initdb` in a
//! temp dir (as the `postgres` OS user when this process is root: initdb refuses root),
//! listening on 127.0.0.1 only (a free port, or `HOOKD_TEST_PG_PORT`), trust auth for the
//! `postgres` superuser, fsync and synchronous_commit on (the suite tests durability), and
//! connections enough for many hookd pools at once.
//!
//! Stopping it: a `static` is never dropped, so no Drop can stop the server. Instead a
//! small keeper shell makes the temp dir, runs initdb and the server, and has for stdin a
//! pipe from this process. The write end lives in the `static` for the life of the
//! process and the kernel closes it when the process ends, however it ends (normal exit,
//! panic, SIGKILL, Ctrl-C). The keeper then reads end of file, asks the server for a fast
//! shutdown, waits for it, and removes the temp dir. The keeper has its own process
//! group, so a Ctrl-C in the terminal reaches only this process and never the server
//! half-way; as root it runs as `postgres` by a plain setuid (runuser's session parent
//! would SIGKILL it on a Ctrl-C, before the clean-up).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{Hookd, Settings};

/// Whether this run uses PostgreSQL: `HOOKD_TEST_STORE=postgres`. Unset, empty or
/// `redb` is the default store; anything else is a typo and fails.
pub fn enabled() -> bool {
    static MODE: OnceLock<bool> = OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("HOOKD_TEST_STORE").as_deref() {
        Err(_) | Ok("" | "redb") => false,
        Ok("postgres") => true,
        Ok(other) => panic!("HOOKD_TEST_STORE={other:?}: expected \"redb\" or \"postgres\""),
    })
}

/// A fresh, empty database on the test server, dropped (with whatever sessions are still
/// on it) when this handle goes.
pub struct Database {
    name: String,
    url: String,
}

impl Database {
    /// `postgres://postgres@127.0.0.1:<port>/hookd_<n>?sslmode=disable`
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `sql` in this database through psql; the rows as psql's unaligned output.
    pub fn query(&self, sql: &str) -> String {
        server()
            .psql(&self.name, sql)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Frees the disk as the suite goes; a failure here costs only space.
        if let Some(server) = SERVER.get() {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if let Err(e) = server.psql("postgres", &sql) {
                eprintln!("warning: {e}");
            }
        }
    }
}

/// A new database on the test server (started at the first call).
pub fn database() -> Database {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let server = server();
    let name = format!("hookd_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    server
        .psql("postgres", &format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
        server.port
    );
    Database { name, url }
}

/// Starts one node of a cluster on `db`: `[cluster] node_id` and `lease` as given, the
/// rest of `settings` as for any hookd.
pub fn node(db: &Database, node_id: &str, lease: &str, settings: Settings) -> Hookd {
    let cluster = format!(
        "node_id = \"{node_id}\"\nlease = \"{lease}\"\n{}",
        settings.cluster
    );
    Hookd::start_with(Settings {
        postgres_url: Some(db.url().to_string()),
        cluster,
        ..settings
    })
}

/// A node id for a hookd that did not name one: fixed for that hookd's life, so that a
/// restart is the same node coming back (its leases are its own), not a stranger that
/// must wait for them to expire.
pub fn node_id() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("it-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

static SERVER: OnceLock<Server> = OnceLock::new();

/// The test process's server, started at the first call.
pub fn server() -> &'static Server {
    SERVER.get_or_init(Server::start)
}

pub struct Server {
    pub port: u16,
    /// The temp dir: `data` (the cluster), `server.log`, the Unix socket.
    pub dir: PathBuf,
    psql: PathBuf,
    /// The keeper, with its stdin: never written, closed by the kernel when this process
    /// ends (module docs). Never waited for: it outlives this process on purpose.
    keeper: Mutex<Child>,
}

/// The keeper, run as the cluster's owner: `$1` the server binaries, `$2` the port, `$3`
/// lines for postgresql.conf. Makes the temp dir, runs initdb there and starts the
/// server; prints the dir, then the server's pid (or what failed); then waits for end of
/// file on stdin, stops the server and removes the dir. Doing all of it here leaves
/// nothing behind even when this process dies during initdb. `pg_ctl`, not `postgres &`:
/// a background job of a script ignores SIGINT until the server sets its handlers, so an
/// early stop could be lost; `pg_ctl start -w` returns once the server is up, and
/// `pg_ctl stop` then works.
const KEEPER: &str = r#"
# When this process is gone, an echo must fail, not kill the keeper (SIGPIPE).
trap '' PIPE
dir=$(mktemp -d "${TMPDIR:-/tmp}/hookd-pg-XXXXXX") || exit 1
echo "$dir"
data=$dir/data
started=
if ! "$1/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    >"$dir/initdb.log" 2>&1; then
  echo "initdb failed"
else
  # A Unix socket path has about 100 bytes at most: a deep TMPDIR goes without one.
  sockets=$dir
  [ ${#dir} -le 80 ] || sockets=
  printf "%s\nunix_socket_directories = '%s'\n" "$3" "$sockets" >>"$data/postgresql.conf"
  if "$1/pg_ctl" -D "$data" -l "$dir/server.log" -o "-p $2" -w -t 60 start >/dev/null 2>&1; then
    started=1
    head -n 1 "$data/postmaster.pid"
  else
    echo "start failed"
  fi
fi
exec >/dev/null 2>&1
cat
[ -z "$started" ] || "$1/pg_ctl" -D "$data" -m fast -w -t 60 stop
rm -rf "$dir"
"#;

/// The settings the tests need, appended to the cluster's postgresql.conf.
const SERVER_CONF: &str = "
# hookd's end-to-end tests (tests/it/common/postgres.rs)
listen_addresses = '127.0.0.1'
max_connections = 600
shared_buffers = '32MB'
fsync = on
synchronous_commit = on
log_min_messages = warning";

impl Server {
    fn start() -> Server {
        let bindir = bindir();
        let owner = running_as_root().then(postgres_user);
        let fixed_port = std::env::var("HOOKD_TEST_PG_PORT")
            .ok()
            .map(|p| p.parse::<u16>().expect("HOOKD_TEST_PG_PORT: a port number"));
        // A free port can be taken between the look and the server's bind: try again.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = fixed_port.unwrap_or_else(free_port);
            match Server::try_start(&bindir, owner, port) {
                Ok(server) => return server,
                Err(e) if fixed_port.is_none() && e.contains("could not bind") => failures.push(e),
                Err(e) => panic!("{e}"),
            }
        }
        panic!(
            "the test PostgreSQL server did not start:\n{}",
            failures.join("\n")
        );
    }

    fn try_start(bindir: &Path, owner: Option<(u32, u32)>, port: u16) -> Result<Server, String> {
        let mut keeper = Command::new("sh");
        if let Some((uid, gid)) = owner {
            // Not runuser: its session parent would SIGKILL the keeper on a Ctrl-C.
            keeper.uid(uid).gid(gid);
        }
        let mut child = keeper
            .args(["-c", KEEPER, "hookd-test-postgres"])
            .arg(bindir)
            .arg(port.to_string())
            .arg(SERVER_CONF)
            // The owner may not be allowed into this process's working directory.
            .current_dir("/")
            .env("LC_ALL", "C")
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh for the PostgreSQL keeper");
        let mut lines = BufReader::new(child.stdout.take().expect("keeper stdout")).lines();
        let mut line = || lines.next().and_then(Result::ok).unwrap_or_default();
        let dir = PathBuf::from(line());
        let pid = line();
        let server = Server {
            port,
            dir: dir.clone(),
            psql: psql(bindir),
            keeper: Mutex::new(child),
        };
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(60);
        let why = loop {
            if dir.as_os_str().is_empty() {
                break format!(
                    "the keeper could not make a temp dir under {} (as {})",
                    std::env::temp_dir().display(),
                    if owner.is_some() {
                        "postgres"
                    } else {
                        "this user"
                    },
                );
            }
            if pid == "initdb failed" {
                break format!("initdb failed:\n{}", read("initdb.log"));
            }
            if pid.parse::<u32>().is_err() {
                break format!(
                    "the test PostgreSQL server (port {port}) did not start ({pid}); its log:\n{}",
                    read("server.log")
                );
            }
            if server.psql("postgres", "SELECT 1").is_ok() {
                return Ok(server);
            }
            let alive = Command::new("kill")
                .args(["-0", &pid])
                .status()
                .is_ok_and(|s| s.success());
            if !alive || Instant::now() > deadline {
                break format!(
                    "the test PostgreSQL server (pid {pid}, port {port}) {}; its log:\n{}",
                    if alive {
                        "is not ready after 60 s"
                    } else {
                        "exited"
                    },
                    read("server.log")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        // The logs are read: now the keeper may clean up (told by the end of its stdin).
        let mut keeper = server.keeper.into_inner().unwrap();
        drop(keeper.stdin.take());
        let _ = keeper.wait();
        Err(why)
    }

    /// Runs `sql` in database `db` (as the superuser over TCP); the rows, or what went
    /// wrong.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres dbname={db} sslmode=disable connect_timeout=10",
            self.port
        );
        let out = Command::new(&self.psql)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(&conninfo)
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {}: {e}", self.psql.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(format!(
                "psql {sql:?} on {db} (port {}): {}",
                self.port,
                String::from_utf8_lossy(&out.stderr).trim_end()
            ))
        }
    }
}

/// PostgreSQL's server binaries: `HOOKD_TEST_PG_BINDIR`, else the highest version under
/// /usr/lib/postgresql (Debian's layout), else `pg_config --bindir`.
fn bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("HOOKD_TEST_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<f64>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((_, bin)) = debian {
        return bin;
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|bin| bin.join("initdb").exists());
    from_pg_config.unwrap_or_else(|| {
        panic!(
            "HOOKD_TEST_STORE=postgres needs PostgreSQL's server binaries (initdb, postgres): \
             none under /usr/lib/postgresql/*/bin nor at `pg_config --bindir`. Install them \
             (Debian: apt-get install postgresql) or set HOOKD_TEST_PG_BINDIR"
        )
    })
}

/// psql next to the server binaries, else the one on PATH.
fn psql(bindir: &Path) -> PathBuf {
    let beside = bindir.join("psql");
    if beside.exists() {
        beside
    } else {
        PathBuf::from("psql")
    }
}

fn running_as_root() -> bool {
    id(&["-u"]) == 0
}

/// The `postgres` OS user's uid and gid (initdb and the server refuse to run as root).
fn postgres_user() -> (u32, u32) {
    (id(&["-u", "postgres"]), id(&["-g", "postgres"]))
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run id {args:?}: {e}"));
    assert!(
        out.status.success(),
        "id {args:?}: {} (as root, the suite runs PostgreSQL as the `postgres` user, which \
         Debian's postgresql package creates)",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("id {args:?}: {e}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
