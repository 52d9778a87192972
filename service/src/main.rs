//! `codeseal-service`: the signing service's binary.
use std::{io::Read, net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use codeseal_service::{auth, setup};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "codeseal-service",
    version,
    about = "codeseal signing service: upload -> sign -> verify -> store"
)]
struct Cli {
    /// Log format: text or json.
    #[arg(
        long,
        global = true,
        env = "CODESEAL_SERVICE_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

/// How log records are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// HTTP API and in-process workers.
    Serve {
        /// Address to listen on (port 0: any free port).
        #[arg(
            long,
            env = "CODESEAL_SERVICE_LISTEN",
            default_value = "127.0.0.1:8080"
        )]
        listen: SocketAddr,
        /// Write the bound port to this file once listening.
        #[arg(long)]
        port_file: Option<PathBuf>,
        /// In-process workers (0: API only).
        #[arg(long, env = "CODESEAL_SERVICE_WORKERS", default_value_t = 2)]
        workers: usize,
        #[command(flatten)]
        common: setup::Common,
    },
    /// Workers only: take jobs from the queue (or poll the job table) and process them.
    Worker {
        /// Jobs processed at once.
        #[arg(long, env = "CODESEAL_SERVICE_WORKERS", default_value_t = 2)]
        workers: usize,
        /// Serve GET /metrics (no authentication: keep the address private) here.
        #[arg(long, env = "CODESEAL_SERVICE_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        /// Write the metrics port to this file once listening.
        #[arg(long)]
        port_file: Option<PathBuf>,
        #[command(flatten)]
        common: setup::Common,
    },
    /// The HTTP API as an AWS Lambda function (API Gateway).
    LambdaApi {
        #[command(flatten)]
        common: setup::Common,
    },
    /// The worker as an AWS Lambda function (S3 notifications, SQS, EventBridge).
    LambdaWorker {
        #[command(flatten)]
        common: setup::Common,
    },
    /// Reads an API key on stdin and prints its `NAME SHA256HEX` line for --api-keys.
    HashKey {
        /// The key's name.
        #[arg(long, default_value = "client")]
        name: String,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")
    });
    // Colours only on a terminal: log files and collectors get plain text.
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == LogFormat::Json {
        b.json().flatten_event(true).with_current_span(true).init();
    } else {
        b.init();
    }
}

async fn shutdown_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
    token.cancel();
}

fn worker_id() -> String {
    let mut r = [0u8; 4];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut r);
    format!("w{}-{}", std::process::id(), hex::encode(r))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::HashKey { name } => {
            let mut key = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_to_string(&mut key)?;
            if key.trim().is_empty() {
                anyhow::bail!("no key on stdin");
            }
            println!("{}", auth::hash_line(&name, &key));
        }
        Cmd::Serve {
            listen,
            port_file,
            workers,
            common,
        } => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let addr = listener.local_addr()?;
            let ctx = setup::build(&common, &format!("http://{addr}"), true).await?;
            let shutdown = CancellationToken::new();
            tokio::spawn(shutdown_signal(shutdown.clone()));
            tokio::spawn(codeseal_service::worker::run_upload_expiry(
                Arc::clone(&ctx),
                shutdown.clone(),
            ));
            let workers_task = (workers > 0).then(|| {
                tokio::spawn(codeseal_service::worker::run_workers(
                    Arc::clone(&ctx),
                    workers,
                    worker_id(),
                    shutdown.clone(),
                ))
            });
            if let Some(p) = port_file {
                std::fs::write(p, addr.port().to_string())?;
            }
            tracing::info!(%addr, workers, "listening");
            let s = shutdown.clone();
            axum::serve(listener, codeseal_service::api::router(Arc::clone(&ctx)))
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await?;
            if let Some(t) = workers_task {
                let _ = t.await;
            }
            let counts = ctx.jobs.request_counts();
            tracing::info!(
                reads = counts.reads,
                scans = counts.scans,
                writes = counts.writes,
                "stopped; job store requests of this process"
            );
        }
        Cmd::Worker {
            workers,
            metrics_listen,
            port_file,
            common,
        } => {
            let ctx = setup::build(&common, "http://127.0.0.1", false).await?;
            let shutdown = CancellationToken::new();
            tokio::spawn(shutdown_signal(shutdown.clone()));
            if let Some(addr) = metrics_listen {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                let bound = listener.local_addr()?;
                let s = shutdown.clone();
                let router = codeseal_service::api::metrics_router(Arc::clone(&ctx));
                tokio::spawn(async move {
                    let served = axum::serve(listener, router)
                        .with_graceful_shutdown(async move { s.cancelled().await })
                        .await;
                    if let Err(e) = served {
                        tracing::warn!(error = %e, "the metrics listener stopped");
                    }
                });
                if let Some(p) = port_file {
                    std::fs::write(p, bound.port().to_string())?;
                }
                tracing::info!(addr = %bound, "metrics served");
            }
            tokio::spawn(codeseal_service::worker::run_upload_expiry(
                Arc::clone(&ctx),
                shutdown.clone(),
            ));
            codeseal_service::worker::run_workers(ctx, workers, worker_id(), shutdown).await;
        }
        #[cfg(feature = "lambda")]
        Cmd::LambdaApi { common } => {
            let ctx = setup::build(&common, "http://127.0.0.1", true).await?;
            codeseal_service::lambda::run_api(ctx)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
        }
        #[cfg(feature = "lambda")]
        Cmd::LambdaWorker { common } => {
            let bucket = common.uploads_bucket.clone();
            let ctx = setup::build(&common, "http://127.0.0.1", false).await?;
            codeseal_service::lambda::run_worker(ctx, bucket)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
        }
        #[cfg(not(feature = "lambda"))]
        Cmd::LambdaApi { .. } | Cmd::LambdaWorker { .. } => {
            anyhow::bail!("this build has no Lambda support (feature `lambda`)")
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("codeseal-service: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codeseal-service: {e:#}");
            ExitCode::from(2)
        }
    }
}
