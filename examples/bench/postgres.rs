//! The PostgreSQL server a `--postgres` run stores into: one fresh database per scenario,
//! its size, and the CPU the server's processes spend.
//!
//! The bench talks to the server (the `--postgres` URL) with tokio-postgres, without TLS,
//! one short connection per statement: `CREATE DATABASE bench_<pid>_<n>` before a
//! scenario, `DROP DATABASE … WITH (FORCE)` after it (unless `--keep`),
//! `pg_database_size` for the store line.
//!
//! **PostgreSQL's CPU.** The server is a process tree: the postmaster and one child per
//! connection (backends) and per background task (checkpointer, walwriter, autovacuum…).
//! The postmaster is found from the server itself: `SHOW data_directory`, then the first
//! line of `postmaster.pid` in it; if that file cannot be read (the bench does not run as
//! root or as the server's user), from the parent of the bench's own backend
//! (`pg_backend_pid()`). Either way the pid must be a `postgres` process in this
//! machine's `/proc`, else the CPU is reported as not measured (a remote server, or one
//! in another pid namespace).
//!
//! A [`PgTicks`] snapshot sums utime + stime of the postmaster and of every process
//! whose parent it is, plus the postmaster's `cutime + cstime`: the CPU of children it
//! already reaped. A backend whose connection closes inside the measured phase (its CPU
//! vanishes from the children's sum) has its CPU moved into the postmaster's cutime when
//! it is reaped, so the difference of two snapshots keeps it (a child that exited but is
//! not reaped yet is still listed, as a zombie). Blind spots: a pid reused inside the
//! window, and grandchildren nobody reaped. Everything the server does in the window
//! counts, work for other databases on the same server included: give the bench a
//! server of its own for figures.

use std::collections::HashMap;
use std::path::Path;

use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::cpu::proc_stat;

/// The server of `--postgres`: its URL and a runtime to run the admin statements on.
pub struct PgServer {
    url: String,
    runtime: tokio::runtime::Runtime,
    /// The postmaster's pid on this machine, or why PostgreSQL's CPU cannot be read.
    pub postmaster: Result<u32, String>,
}

impl PgServer {
    /// Connects once to check the URL (exits with the server's message if it fails) and
    /// finds the postmaster.
    pub fn connect(url: &str) -> PgServer {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| fail(&format!("cannot start a tokio runtime: {e}")));
        let version = value(&runtime, url, "SHOW server_version")
            .unwrap_or_else(|e| fail(&format!("cannot reach PostgreSQL at {url}: {e}")));
        let server = PgServer {
            postmaster: find_postmaster(&runtime, url),
            url: url.to_string(),
            runtime,
        };
        match &server.postmaster {
            Ok(pid) => {
                println!("postgres          server {version} at {url}, postmaster pid {pid}")
            }
            Err(why) => println!(
                "postgres          server {version} at {url}; its CPU is not measured: {why}"
            ),
        }
        server
    }

    /// Creates `bench_<pid>_<n>` (a fresh, empty database); it is dropped when the
    /// answer is dropped, unless `keep`.
    pub fn create_database(&self, n: usize, keep: bool) -> Database<'_> {
        let name = format!("bench_{}_{n}", std::process::id());
        if let Err(e) = self.execute(&self.url, &format!("CREATE DATABASE {name}")) {
            fail(&format!("CREATE DATABASE {name}: {e}"));
        }
        let url = database_url(&self.url, &name);
        let mut db = Database {
            server: self,
            name,
            url,
            keep,
            empty_bytes: 0,
        };
        db.empty_bytes = db.size_bytes().unwrap_or(0);
        db
    }

    fn value(&self, url: &str, sql: &str) -> Result<String, String> {
        value(&self.runtime, url, sql)
    }

    fn execute(&self, url: &str, sql: &str) -> Result<(), String> {
        self.runtime.block_on(simple_query(url, sql)).map(drop)
    }
}

/// One scenario's database, dropped with its value unless kept.
pub struct Database<'s> {
    server: &'s PgServer,
    pub name: String,
    /// The server URL with this database in it: what hookd's config gets.
    pub url: String,
    keep: bool,
    /// `pg_database_size` right after `CREATE DATABASE` (the template's catalogs, about
    /// 7 MiB), so the store line can also say what hookd's data added.
    pub empty_bytes: u64,
}

impl Database<'_> {
    /// `pg_database_size`: tables, indexes, TOAST and free space of this database.
    pub fn size_bytes(&self) -> Result<u64, String> {
        let sql = format!("SELECT pg_database_size('{}')", self.name);
        let text = self.server.value(&self.server.url, &sql)?;
        text.parse().map_err(|e| format!("{sql}: {text:?}: {e}"))
    }
}

impl Drop for Database<'_> {
    fn drop(&mut self) {
        if self.keep {
            println!("kept              database {} ({})", self.name, self.url);
            return;
        }
        // FORCE (PostgreSQL 13+) ends connections a killed hookd may have left behind.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = self.server.execute(&self.server.url, &sql) {
            eprintln!("bench: {sql}: {e} (drop it by hand)");
        }
    }
}

/// The postmaster's pid on this machine, or why it cannot be measured.
fn find_postmaster(runtime: &tokio::runtime::Runtime, url: &str) -> Result<u32, String> {
    let from_file = value(runtime, url, "SHOW data_directory")
        .and_then(|dir| postmaster_pid_file(Path::new(&dir)));
    let from_backend = runtime.block_on(backend_parent(url));
    let pid = match (from_file, from_backend) {
        (Ok(file), Ok(parent)) if file != parent => {
            return Err(format!(
                "postmaster.pid says {file} but the bench's backend is a child of {parent} \
                 (another pid namespace?)"
            ));
        }
        (Ok(pid), _) | (_, Ok(pid)) => pid,
        (Err(file), Err(backend)) => return Err(format!("{file}; {backend}")),
    };
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "postgres" {
        return Err(format!(
            "pid {pid} is not a postgres process here (comm {:?}): the server is not on \
             this machine",
            comm.trim()
        ));
    }
    Ok(pid)
}

/// The parent of the backend serving a connection of the bench's: the postmaster.
/// Read while the connection is open (a closed connection's backend exits).
async fn backend_parent(url: &str) -> Result<u32, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| describe(&e))?;
    let connection = tokio::spawn(connection);
    let row = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(|e| describe(&e));
    let parent = row.and_then(|row| {
        let pid: i32 = row.try_get(0).map_err(|e| describe(&e))?;
        let pid = u32::try_from(pid).map_err(|e| format!("backend pid {pid}: {e}"))?;
        proc_stat(pid)
            .map(|s| s.ppid)
            .ok_or_else(|| format!("backend pid {pid} is not in this machine's /proc"))
    });
    drop(client);
    let _ = connection.await;
    parent
}

/// The first column of the first row of `sql`, as text.
fn value(runtime: &tokio::runtime::Runtime, url: &str, sql: &str) -> Result<String, String> {
    let messages = runtime.block_on(simple_query(url, sql))?;
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .ok_or_else(|| format!("{sql}: no value"))
}

/// Runs `sql` on a connection of its own (no transaction: CREATE/DROP DATABASE need that).
async fn simple_query(url: &str, sql: &str) -> Result<Vec<SimpleQueryMessage>, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| describe(&e))?;
    let connection = tokio::spawn(connection);
    let answer = client.simple_query(sql).await.map_err(|e| describe(&e));
    drop(client);
    let _ = connection.await;
    answer
}

/// The server's own message when there is one (tokio-postgres's Display says only "db
/// error"), else the error and its causes.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn fail(message: &str) -> ! {
    eprintln!("bench: {message}");
    std::process::exit(2)
}

/// `url` naming the database `name` instead of its own: the path of a
/// `postgres://…/db?…` URL is replaced, a `key=value` string gets `dbname=` appended
/// (a later key wins).
pub fn database_url(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={name}");
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let query = rest[authority_end..]
        .find('?')
        .map_or("", |q| &rest[authority_end + q..]);
    format!(
        "{}{}/{name}{query}",
        &url[..scheme_end + 3],
        &rest[..authority_end]
    )
}

/// The first line of `<data_directory>/postmaster.pid`.
fn postmaster_pid_file(data_dir: &Path) -> Result<u32, String> {
    let path = data_dir.join("postmaster.pid");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let first = text.lines().next().unwrap_or("").trim();
    first
        .parse()
        .map_err(|e| format!("{}: first line {first:?}: {e}", path.display()))
}

/// CPU ticks of a PostgreSQL server's process tree at one moment.
pub struct PgTicks {
    /// Children of the postmaster: pid → (group, utime + stime + cutime + cstime).
    children: HashMap<u32, (String, u64)>,
    /// The postmaster's own utime + stime.
    postmaster: u64,
    /// The postmaster's cutime + cstime: children it reaped, whole lives.
    reaped: u64,
}

impl PgTicks {
    /// Snapshots the tree under `postmaster`; `database` names the backends that serve
    /// the scenario's database (the rest are grouped by what their command line says).
    pub fn take(postmaster: u32, database: &str) -> PgTicks {
        let mut children = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
                    continue;
                };
                let Some(stat) = proc_stat(pid) else {
                    continue;
                };
                if stat.ppid == postmaster {
                    let ticks = stat.utime + stat.stime + stat.cutime + stat.cstime;
                    children.insert(pid, (process_group(pid, database), ticks));
                }
            }
        }
        let own = proc_stat(postmaster).unwrap_or_default();
        PgTicks {
            children,
            postmaster: own.utime + own.stime,
            reaped: own.cutime + own.cstime,
        }
    }

    fn total(&self) -> u64 {
        self.postmaster + self.reaped + self.children.values().map(|c| c.1).sum::<u64>()
    }

    /// Ticks used since `before`, by group: processes alive now by their group, the
    /// postmaster, and `(exited processes)` for children that ended in between.
    pub fn since(&self, before: &PgTicks) -> Vec<(String, u64)> {
        let mut groups: HashMap<String, u64> = HashMap::new();
        let mut live = 0;
        for (pid, (group, ticks)) in &self.children {
            let used = ticks.saturating_sub(before.children.get(pid).map_or(0, |c| c.1));
            live += used;
            *groups.entry(group.clone()).or_default() += used;
        }
        let postmaster = self.postmaster.saturating_sub(before.postmaster);
        groups.insert("postmaster".into(), postmaster);
        let total = self.total().saturating_sub(before.total());
        let exited = total.saturating_sub(live + postmaster);
        if exited > 0 {
            groups.insert("(exited processes)".into(), exited);
        }
        groups.into_iter().collect()
    }
}

/// What a postgres child is, from its command line (`postgres: walwriter`,
/// `postgres: user db 127.0.0.1(5432) idle`).
fn process_group(pid: u32, database: &str) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
    let title = cmdline
        .trim()
        .strip_prefix("postgres: ")
        .unwrap_or(cmdline.trim());
    if title.contains("autovacuum") {
        "autovacuum".into()
    } else if title.split_whitespace().any(|w| w == database) {
        "backends".into()
    } else if title.contains('(') {
        "other connections".into()
    } else {
        title.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn database_url_replaces_the_path_and_keeps_the_query() {
        let url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
        assert_eq!(
            database_url(url, "bench_1_0"),
            "postgres://postgres@127.0.0.1:5432/bench_1_0?sslmode=disable"
        );
        assert_eq!(
            database_url("postgresql://u:p@h:1", "d"),
            "postgresql://u:p@h:1/d"
        );
        assert_eq!(
            database_url("postgres://h?sslmode=disable", "d"),
            "postgres://h/d?sslmode=disable"
        );
        assert_eq!(
            database_url("host=127.0.0.1 user=postgres", "d"),
            "host=127.0.0.1 user=postgres dbname=d"
        );
        assert_eq!(
            database_url("postgres:///db?host=/run/postgresql", "d"),
            "postgres:///d?host=/run/postgresql"
        );
    }
}
