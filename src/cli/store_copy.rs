//! `hookd store copy --from CONFIG --to CONFIG`: copies everything one store holds into
//! another, empty one (redb ↔ PostgreSQL), verifies the counts and prints them
//! (`store::copy`). Both stores must be idle: stop hookd on the source (a redb file it
//! holds cannot even be opened) and on the target first.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::store::backend::describe;
use crate::store::copy::{self, Refused};

pub fn run(from: PathBuf, to: PathBuf) -> anyhow::Result<ExitCode> {
    let (_, source) = super::load_config(Some(from))?;
    let (_, target) = super::load_config(Some(to))?;
    let (source_desc, target_desc) = (describe(&source), describe(&target));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let started = std::time::Instant::now();
    let counts = match runtime.block_on(copy::copy(&source, &target)) {
        Ok(counts) => counts,
        Err(e) => {
            return Err(match e.downcast::<Refused>() {
                Ok(refused) => super::BadInput(format!("store copy refused: {refused}")).into(),
                Err(e) => e.context(format!("cannot copy {source_desc} to {target_desc}")),
            });
        }
    };
    println!("copied {source_desc} to {target_desc}");
    print!("{counts}");
    println!(
        "counts verified: the target holds what the source held ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
