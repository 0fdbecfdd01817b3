//! `hookd serve`: opens the store, binds the API, and runs until SIGTERM/SIGINT.
//! SIGHUP reloads `[[tokens]]` from the config file (a broken file keeps the old tokens).

use std::path::PathBuf;

use anyhow::Context;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::api::{self, AppState, auth::Auth};
use crate::config::Config;
use crate::delivery::Engine;
use crate::store::Store;

pub fn run(config_path: PathBuf, config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hookd-io")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config_path, config))
}

async fn serve(config_path: PathBuf, config: Config) -> anyhow::Result<()> {
    let location = crate::store::backend::describe(&config);
    let opening = std::time::Instant::now();
    let store = Store::open(&config)
        .await
        .with_context(|| format!("cannot open the store ({location})"))?;
    // A store that was not closed cleanly is repaired on open, which takes time in
    // proportion to its size: worth seeing in the log.
    tracing::info!(ms = opening.elapsed().as_millis() as u64, "store opened");
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;

    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;

    for warning in config.warnings() {
        tracing::warn!("config: {warning}");
    }
    if config.tokens.is_empty() {
        tracing::warn!(
            "no [[tokens]] configured: every API request will be refused (see `hookd token new`)"
        );
    }
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let engine = Engine::start(store.clone(), &config, Arc::clone(&metrics));
    let engine_alive = Arc::clone(&engine.alive);
    let state = Arc::new(AppState {
        store: store.clone(),
        delivery: engine.handle.clone(),
        metrics,
        auth: Auth::new(&config.tokens),
        config: Arc::new(config),
    });

    let reload_state = Arc::clone(&state);
    let reload = tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match Config::load(&config_path) {
                Ok(fresh) => {
                    reload_state.auth.replace(&fresh.tokens);
                    tracing::info!(tokens = fresh.tokens.len(), "SIGHUP: tokens reloaded");
                }
                Err(e) => tracing::error!(
                    "SIGHUP: {} is invalid, keeping the old tokens:\n{e}",
                    config_path.display()
                ),
            }
        }
    });

    tracing::info!(version = env!("CARGO_PKG_VERSION"), store = %location, "hookd listening on {local}");
    crate::systemd::notify("READY=1");
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
        }
        crate::systemd::notify("STOPPING=1");
    };
    let retention = tokio::spawn(prune_forever(store.clone(), state.config.retention.events));
    let space = tokio::spawn(watch_space(
        store.clone(),
        state.config.store.min_free_space,
    ));
    let watchdog = crate::systemd::watchdog_interval().map(|period| {
        let liveness = crate::systemd::Liveness {
            scheduler: Arc::clone(&engine_alive),
            store: store.clone(),
            max_unavailable: state.config.store.max_unavailable,
        };
        tokio::spawn(crate::systemd::watchdog(period, liveness))
    });
    api::serve(listener, state, shutdown).await;
    // Every task that holds the store ends before the store is closed (see Store::close).
    for task in [retention, reload, space].into_iter().chain(watchdog) {
        task.abort();
        let _ = task.await;
    }
    engine.shutdown().await;
    store.leave().await;
    tokio::task::spawn_blocking(move || store.close(STORE_CLOSE_WAIT))
        .await
        .context("store shutdown failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// How long shutdown waits for the last users of the store (delivery workers finishing
/// an abandoned attempt) before it leaves without closing the file cleanly.
const STORE_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads the store's free space once a second (see `store::space`).
async fn watch_space(store: Store, reserve: u64) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        store.check_space(reserve);
    }
}

/// How often the cleanup sweep looks for unfinished webhook removals and cancellations.
const CLEANUP_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// The store's background work, forever: deletes events and deliveries older than
/// `retention` in small batches, and finishes the removals and cancellations that a
/// delete or disable left to be done in chunks (`store::tables`, `webhook_cleanup`): at
/// once at startup (work a crash or stop interrupted), then every [`CLEANUP_SWEEP`] (a
/// webhook disabled by its receiver's `410` or by `disable_after`).
async fn prune_forever(store: Store, retention: std::time::Duration) {
    let sweep = {
        let store = store.clone();
        async move {
            loop {
                match store.finish_cleanups().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(webhooks = n, "cleanup: finished"),
                    Err(crate::store::StoreError::Closed) => return,
                    Err(e) => tracing::warn!(error = %e, "cleanup failed; will try again"),
                }
                tokio::time::sleep(CLEANUP_SWEEP).await;
            }
        }
    };
    tokio::join!(sweep, prune_events(store, retention));
}

/// Deletes events and deliveries older than `retention`, in small batches, forever.
async fn prune_events(store: Store, retention: std::time::Duration) {
    use crate::model::Millis;
    const BATCH: usize = 500;
    let every = (retention / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    loop {
        tokio::time::sleep(every).await;
        let cutoff = Millis(
            Millis::now()
                .0
                .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX)),
        );
        loop {
            match store.prune(cutoff, BATCH).await {
                Ok(pruned) => {
                    if pruned.events + pruned.deliveries > 0 {
                        tracing::info!(
                            events = pruned.events,
                            deliveries = pruned.deliveries,
                            "retention: pruned"
                        );
                    }
                    if !pruned.more {
                        break;
                    }
                }
                Err(crate::store::StoreError::Closed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "retention: pruning failed; will try again");
                    break;
                }
            }
        }
    }
}
