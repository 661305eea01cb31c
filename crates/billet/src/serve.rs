//! `billet serve`: the S3 server — start-up, background work, and
//! shutdown. Connections are accepted in `listener`, requests routed in
//! `router`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use billet_engine::Engine;
use billet_s3::{Authorizer, S3Options};

use crate::history_api::{History, HistoryRoute};
use tokio::net::TcpListener;

use crate::auth_limit::AuthLimiter;
use crate::config::{Config, IndexBackend};
use crate::router::App;
use crate::{identity, keys, listener, metrics};

/// How long in-flight requests get to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(30);

pub async fn run(config: Config) -> Result<()> {
    // Before anything opens files: the cap below depends on it.
    let fd_limit = listener::raise_fd_limit();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let identity = identity::load_or_create(&config.data_dir)?;
    let index = keys::open_index(&config).await?;
    if let Some(k) = keys::bootstrap(index.as_ref()).await? {
        println!("Created an access key (shown once; `billet keys` manages keys):");
        println!("  AWS_ACCESS_KEY_ID={}", k.id);
        println!("  AWS_SECRET_ACCESS_KEY={}", k.secret);
    }
    let engine = Engine::open(config.engine()?, index)
        .await
        .context("opening the engine")?;
    if let Some(step) = pause_at()? {
        engine.set_gc_hooks(std::sync::Arc::new(PauseAt {
            step,
            marker: config.data_dir.join(format!("gc-paused-{}", step.name())),
        }));
    }
    let cold = engine.start_cold();
    let admin = crate::admin::serve(&config.data_dir, engine.clone())?;
    let collector = config.gc_interval.map(|every| {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            // The first tick fires at once: wait a whole interval first.
            tick.tick().await;
            loop {
                tick.tick().await;
                match engine
                    .collect(billet_engine::CollectOptions::default())
                    .await
                {
                    Ok(r) => tracing::info!(
                        duration_ms = r.duration_ms,
                        rewritten = r.data.rewritten_segments + r.catalog.rewritten_segments,
                        reclaimed = r.data.reclaimed_bytes + r.catalog.reclaimed_bytes,
                        "garbage collection"
                    ),
                    Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
                }
            }
        })
    });
    let lifecycle = config.lifecycle_interval.map(|every| {
        let engine = engine.clone();
        let day_ms = i64::try_from(config.lifecycle_day.as_millis()).unwrap_or(i64::MAX);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match engine.run_lifecycle(billet_engine::now_ms(), day_ms).await {
                    Ok(r) if r.buckets > 0 => tracing::info!(
                        buckets = r.buckets,
                        expired = r.expired,
                        versions_removed = r.versions_removed,
                        uploads_aborted = r.uploads_aborted,
                        skipped = r.skipped,
                        "lifecycle"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "lifecycle pass failed"),
                }
            }
        })
    });
    if let Some(c) = engine.cold() {
        tracing::info!(remote = %c.describe(), node = %c.node(), "shipping sealed segments");
    }
    let authz = Authorizer::new(engine.clone());
    let history = History {
        engine: engine.clone(),
        identity: identity.clone(),
        authz: authz.clone(),
    };
    let s3 = billet_s3::service(
        engine.clone(),
        authz.clone(),
        &S3Options {
            region: config.region.clone(),
            domain: config.domain.clone(),
            max_put_bytes: config.max_put_bytes,
        },
        HistoryRoute(history.clone()),
    )
    .map_err(anyhow::Error::msg)?;
    let app = Arc::new(App {
        s3,
        engine: engine.clone(),
        authz,
        metrics: metrics::install()?,
        ready: AtomicBool::new(true),
        limits: config.limits.clone(),
        auth_limit: AuthLimiter::new(config.limits.auth_failures_per_minute),
        shipped_cache: tokio::sync::Mutex::new(None),
        region: config.region.clone(),
        history,
        basic_auth: config.history_basic_auth,
        domain: match &config.domain {
            Some(d) => Some(billet_s3::BaseDomain::new(d).map_err(anyhow::Error::msg)?),
            None => None,
        },
    });
    let open_buckets = match config.index {
        IndexBackend::Sqlite { max_open_buckets } => max_open_buckets as u64,
        IndexBackend::Postgres { .. } => 0,
    };
    let cap = listener::connection_cap(config.limits.max_connections, fd_limit, open_buckets);
    if cap < config.limits.max_connections {
        tracing::warn!(
            max_connections = config.limits.max_connections,
            fd_limit = fd_limit.unwrap_or(0),
            cap,
            "the file-descriptor limit lowers the connection cap"
        );
    }

    let socket = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = socket.local_addr()?;
    println!(
        "billet {} serving S3 on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    println!("node identity {}", identity::did_key(&identity));
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "listening");

    // Seal idle segments so they can ship, and advance the replay point
    // so a restart after a power loss rolls forward only the last second.
    // Abandoned multipart uploads are aborted once they pass the expiry,
    // checked a few times per expiry period (at most once a minute).
    let expiry = config.upload_expiry;
    let sweep_every = (expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let checkpoint_every = config.checkpoint_interval;
    let sealer = {
        let engine = engine.clone();
        let identity = identity.clone();
        let mut last_checkpoints = std::time::Instant::now();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_sweep = std::time::Instant::now();
            loop {
                tick.tick().await;
                if last_checkpoints.elapsed() >= checkpoint_every {
                    last_checkpoints = std::time::Instant::now();
                    // A bucket whose head has not moved keeps its checkpoint.
                    if let Ok(buckets) = engine.list_buckets().await {
                        for b in buckets {
                            if let Err(e) = engine.sign_checkpoint(&b.name, &identity).await {
                                tracing::warn!(bucket = %b.name, error = %e, "signing a checkpoint failed");
                            }
                        }
                    }
                }
                if last_sweep.elapsed() >= sweep_every {
                    last_sweep = std::time::Instant::now();
                    let before = billet_engine::now_ms() - expiry.as_millis() as i64;
                    match engine.expire_uploads(before).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(uploads = n, "expired abandoned multipart uploads"),
                        Err(e) => tracing::warn!(error = %e, "expiring multipart uploads failed"),
                    }
                }
                let log = engine.log().clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || log.seal_due()).await {
                    tracing::warn!(error = %e, "sealing segments failed");
                }
                if let Err(e) = engine.advance_replay_point().await {
                    tracing::warn!(error = %e, "advancing the replay point failed");
                }
            }
        })
    };

    let stopping = {
        let app = app.clone();
        async move {
            shutdown_signal().await;
            app.ready.store(false, Ordering::SeqCst);
        }
    };
    listener::serve(socket, app.clone(), cap, stopping, DRAIN).await;
    sealer.abort();
    admin.abort();
    let _ = std::fs::remove_file(crate::admin::socket_path(&config.data_dir));
    // A collection cut short is safe (docs/gc.md): it stops where it is.
    if let Some(c) = collector {
        c.abort();
    }
    // Each removal of a pass is a commit of its own: stopping between two
    // leaves the rest for the next pass.
    if let Some(l) = lifecycle {
        l.abort();
    }
    // An upload cut short is not recorded; it ships again next start.
    if let Some(c) = cold {
        c.stop(Duration::from_secs(5)).await;
    }
    // Every acknowledged write is already durable; sealing makes the open
    // segments' sidecars ready for a quick restart.
    let log = engine.log().clone();
    let _ = tokio::task::spawn_blocking(move || log.seal_all()).await;
    // Everything is indexed: the next start has nothing to roll forward.
    if let Err(e) = engine.advance_replay_point().await {
        tracing::warn!(error = %e, "recording the replay point failed");
    }
    tracing::info!("stopped");
    Ok(())
}

/// `BILLET_GC_PAUSE_AT=STEP` (for the crash tests only): every
/// collection stops for good at that step, after writing
/// `DATA_DIR/gc-paused-STEP`, so a test can kill the process there.
fn pause_at() -> Result<Option<billet_engine::GcStep>> {
    match std::env::var("BILLET_GC_PAUSE_AT") {
        Err(_) => Ok(None),
        Ok(s) => billet_engine::GcStep::parse(&s)
            .map(Some)
            .with_context(|| format!("BILLET_GC_PAUSE_AT={s:?} names no step of a collection")),
    }
}

#[derive(Debug)]
struct PauseAt {
    step: billet_engine::GcStep,
    marker: std::path::PathBuf,
}

impl billet_engine::GcHooks for PauseAt {
    fn at(&self, step: billet_engine::GcStep) {
        if step != self.step {
            return;
        }
        let _ = std::fs::write(&self.marker, step.name());
        loop {
            std::thread::park();
        }
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
