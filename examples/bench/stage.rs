//! Where a scenario runs: a temp dir for configs, logs and data, and the store — the
//! redb file in that dir, or with `--postgres` a fresh database `bench_<pid>_<n>` on the
//! server, shared by the scenario's `--nodes` hookd processes.
//!
//! A stage writes one config per node (redb: `hookd.toml` over `data/`; PostgreSQL:
//! `hookd-<i>.toml`, each node with its own data dir, port and `node_id = "bench-<i>"`),
//! starts the nodes, opens CPU windows that include the PostgreSQL server when there is
//! one, prints the store's size per event (the redb file, or `pg_database_size`), and at
//! the end removes the dir and drops the database, unless `--keep`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::HookdSettings;
use crate::cpu::CpuWindow;
use crate::node::Nodes;
use crate::postgres::Database;
use crate::report::print_store_size;
use crate::{Bench, MIB};

/// Numbers the databases of one bench run.
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// One scenario's dir and store.
pub struct Stage<'b> {
    bench: &'b Bench,
    pub dir: tempfile::TempDir,
    /// `None`: the redb store in `dir`.
    db: Option<Database<'b>>,
}

impl Bench {
    /// A fresh temp dir, and with `--postgres` a fresh database.
    pub fn stage(&self) -> Stage<'_> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("hookd-bench-");
        let dir = match &self.args.dir {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .expect("create a temp dir");
        let db = self.postgres.as_ref().map(|server| {
            server.create_database(DATABASES.fetch_add(1, Ordering::Relaxed), self.args.keep)
        });
        Stage {
            bench: self,
            dir,
            db,
        }
    }

    /// hookd processes per scenario: `--nodes` with PostgreSQL, one with redb.
    pub fn node_count(&self) -> usize {
        if self.postgres.is_some() {
            self.args.nodes.max(1)
        } else {
            1
        }
    }
}

impl Stage<'_> {
    /// Writes the config of every node; answers their paths, node 0 first.
    pub fn write_configs(&self, settings: &HookdSettings) -> Vec<PathBuf> {
        let dir = self.dir.path();
        let args = &self.bench.args;
        match &self.db {
            None => {
                let path = dir.join("hookd.toml");
                let text = settings.toml(&dir.join("data"), args, None);
                std::fs::write(&path, text).expect("write the hookd config");
                vec![path]
            }
            Some(db) => (0..self.bench.node_count())
                .map(|i| {
                    let path = dir.join(format!("hookd-{i}.toml"));
                    let data_dir = dir.join(format!("data-{i}"));
                    let text = settings.toml(&data_dir, args, Some((&db.url, i)));
                    std::fs::write(&path, text).expect("write the hookd config");
                    path
                })
                .collect(),
        }
    }

    /// Starts one hookd per config; logs go to `<log>.log` (one node) or
    /// `<log>-node<i>.log`.
    pub fn spawn(&self, configs: &[PathBuf], log: &str) -> Nodes {
        let logs: Vec<PathBuf> = if configs.len() == 1 {
            vec![self.dir.path().join(format!("{log}.log"))]
        } else {
            (0..configs.len())
                .map(|i| self.dir.path().join(format!("{log}-node{i}.log")))
                .collect()
        };
        Nodes::spawn(&self.bench.bin, configs, &logs, &self.bench.args)
    }

    /// A CPU window over the nodes, and over the PostgreSQL server when the store is
    /// there.
    pub fn cpu_window(&self, nodes: &Nodes) -> CpuWindow {
        let postgres = match (&self.db, &self.bench.postgres) {
            (Some(db), Some(server)) => Some(
                server
                    .postmaster
                    .as_ref()
                    .map(|&pid| (pid, db.name.as_str()))
                    .map_err(String::clone),
            ),
            _ => None,
        };
        CpuWindow::start(&nodes.pids(), postgres)
    }

    /// The `store` line: bytes of the redb file, or of the database, per event.
    pub fn print_store(&self, events: usize) {
        match &self.db {
            None => {
                let path = self
                    .dir
                    .path()
                    .join("data")
                    .join(hookd::config::DB_FILE_NAME);
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                print_store_size("hookd.redb", bytes, events);
                let on_disk = hookd::store::space::disk_bytes(&path).unwrap_or(0);
                println!(
                    "                  on disk {:.1} MiB = {:.0} bytes/event (blocks allocated)",
                    on_disk as f64 / MIB,
                    on_disk as f64 / events.max(1) as f64
                );
            }
            Some(db) => match db.size_bytes() {
                Ok(bytes) => {
                    print_store_size("pg_database_size", bytes, events);
                    println!(
                        "                  of which the empty database {:.1} MiB; hookd's data \
                         {:.0} bytes/event",
                        db.empty_bytes as f64 / MIB,
                        bytes.saturating_sub(db.empty_bytes) as f64 / events.max(1) as f64
                    );
                }
                Err(e) => println!("store             pg_database_size unknown: {e}"),
            },
        }
    }

    /// Removes the dir and drops the database, or says where they are with `--keep`.
    pub fn finish(self) {
        if self.bench.args.keep {
            println!("kept              {}", self.dir.keep().display());
        }
        drop(self.db);
        println!();
    }
}
