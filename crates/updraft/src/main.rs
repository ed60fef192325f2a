//! `updraft`: the server (`updraft serve`) and the command line, in one binary.

mod backup;
mod clidocs;
mod config;
mod migrate;
mod service;
mod startup;

/// mimalloc instead of glibc's malloc: glibc keeps per-thread arenas (the
/// runtime's workers, the blocking pool, every SQLite connection's thread)
/// whose freed pages stay resident, which showed as RSS growing with load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;
use std::sync::Arc;
use updraft_store::cluster::{Cluster, PgCluster, SingleNode};
use updraft_store::{PgStore, SqliteStore, Store};

#[derive(Parser)]
#[command(
    name = "updraft",
    version = clidocs::LONG_VERSION,
    about = "Self-hosted live-update server for Capacitor apps (@capgo/capacitor-updater)"
)]
struct Cli {
    #[command(flatten)]
    global: updraft_cli::GlobalOpts,
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Run the server (SQLite and ./updraft-data by default)
    Serve(config::ServeArgs),
    /// Copy this embedded installation (SQLite + local files) into PostgreSQL
    /// and, optionally, S3-compatible object storage
    Migrate(migrate::MigrateArgs),
    /// Back up a running installation (database snapshot and bundle files)
    /// into one file, or check such a file (--verify)
    Backup(backup::BackupArgs),
    /// Rebuild an installation from a backup file in an empty data
    /// directory (--data-dir) or an empty PostgreSQL database (--database-url)
    Restore(backup::RestoreArgs),
    /// Exit 0 when the local server's GET /readyz answers 200, 1 otherwise
    /// (the container image's HEALTHCHECK; needs no curl)
    Healthcheck(service::HealthcheckArgs),
    #[command(flatten)]
    Client(updraft_cli::Command),
    /// Print a shell completion script: `updraft completions bash > /etc/bash_completion.d/updraft`
    Completions(clidocs::CompletionsArgs),
    /// Print the man page updraft(1), or write one page per command with --dir
    Man(clidocs::ManArgs),
}

/// See the runtime builder in `main`.
const MAX_BLOCKING_THREADS: usize = 32;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // File reads run on the blocking pool; tokio's default of 512 threads
        // let 64 concurrent downloads keep ~90 threads, each with its own
        // stack and allocator heap (~0.9 MB of RSS per download). Reads from
        // disk are short, so a few dozen threads keep every download fed.
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Whether --data-dir / UPDRAFT_DATA_DIR named a directory (restore needs one).
    let data_dir_from_default = matches!(
        matches.value_source("data_dir"),
        None | Some(clap::parser::ValueSource::DefaultValue)
    );
    // Settings given as flags (`--data-dir`, `--listen`, …) win over the
    // environment and updraft.toml: the global ones, and with `command` those
    // of the command run.
    let flags = |command: bool| match config::flags_from(&matches, command) {
        Ok(flags) => Some(flags),
        Err(err) => {
            eprintln!("error: {err:#}");
            None
        }
    };
    match cli.command {
        Top::Serve(args) => {
            let Some(flags) = flags(true) else {
                return ExitCode::FAILURE;
            };
            let sources = config::Sources {
                config: args.config,
                flags,
            };
            match runtime.block_on(serve(sources)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Top::Migrate(args) => {
            // The installation `updraft serve` would open: updraft.toml's
            // data_dir when no flag or environment names one.
            let Some(flags) = flags(false) else {
                return ExitCode::FAILURE;
            };
            let mut global = cli.global;
            if let Err(err) = config::client_defaults(&mut global, &flags) {
                eprintln!("error: {err:#}");
                return ExitCode::FAILURE;
            }
            match runtime.block_on(migrate::run(&global.data_dir, args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Top::Backup(args) => {
            let Some(flags) = flags(true) else {
                return ExitCode::FAILURE;
            };
            let sources = config::Sources {
                config: args.config.clone(),
                flags,
            };
            backup::exit_code(runtime.block_on(backup::backup(
                cli.global.json,
                sources,
                args,
                &updraft_core::model::SystemClock,
            )))
        }
        Top::Restore(args) => backup::exit_code(runtime.block_on(backup::restore(
            cli.global,
            data_dir_from_default,
            args,
        ))),
        Top::Healthcheck(args) => {
            let Some(flags) = flags(true) else {
                return ExitCode::FAILURE;
            };
            let sources = config::Sources {
                config: args.config.clone(),
                flags,
            };
            match runtime.block_on(healthcheck(sources, args)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(err) => {
                    eprintln!("error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Top::Completions(args) => docs_exit(clidocs::completions(&args)),
        Top::Man(args) => docs_exit(clidocs::man(&args)),
        Top::Client(command) => {
            let Some(flags) = flags(false) else {
                return ExitCode::FAILURE;
            };
            let mut global = cli.global;
            if let Err(err) = config::client_defaults(&mut global, &flags) {
                eprintln!("error: {err:#}");
                return ExitCode::FAILURE;
            }
            // Chosen, not defaulted (nor from updraft.toml): the `apikey` commands go by it.
            global.given = updraft_cli::Given::from_matches(&matches);
            let code = runtime.block_on(updraft_cli::run(global, command));
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

fn docs_exit(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(sources: config::Sources) -> anyhow::Result<()> {
    let settings = config::load(&sources)?;
    updraft_server::logging::init(&settings.log, settings.log_format);
    let database_urls = settings.database();
    let bootstrap_admin = settings.bootstrap_admin()?;
    let server_config = settings.server;
    std::fs::create_dir_all(&server_config.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            server_config.data_dir.display()
        )
    })?;
    startup::check_writable(&server_config.data_dir)?;
    let (store, cluster, database): (Arc<dyn Store>, Arc<dyn Cluster>, String) =
        match &database_urls {
            Some(db) => {
                let store = PgStore::connect(&db.url, db.read_url.as_deref())
                    .await
                    .with_context(|| match &db.read_url {
                        Some(read_url) => format!(
                            "cannot open PostgreSQL (primary {}, replica {})",
                            config::redact_url(&db.url),
                            config::redact_url(read_url)
                        ),
                        None => format!(
                            "cannot open the PostgreSQL database {}",
                            config::redact_url(&db.url)
                        ),
                    })?;
                let cluster = PgCluster::new(store.pool().clone());
                let described = match &db.read_url {
                    Some(read_url) => format!(
                        "{} (release reads: replica {})",
                        config::redact_url(&db.url),
                        config::redact_url(read_url)
                    ),
                    None => config::redact_url(&db.url),
                };
                (Arc::new(store), Arc::new(cluster), described)
            }
            None => {
                let file = server_config
                    .data_dir
                    .join(updraft_store::sqlite::DB_FILE_NAME);
                if server_config.storage_url.is_none() {
                    startup::check_database_beside_blobs(
                        &file,
                        &server_config.data_dir.join(updraft_store::blob::BLOBS_DIR),
                    )?;
                }
                let store = SqliteStore::open(&server_config.data_dir)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot open the database in {}",
                            server_config.data_dir.display()
                        )
                    })?;
                if settings.startup_quick_check {
                    let started = std::time::Instant::now();
                    store
                        .quick_check()
                        .await
                        .with_context(|| format!("start-up check of {}", file.display()))?;
                    tracing::info!(
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "database quick_check: ok"
                    );
                }
                (
                    Arc::new(store),
                    Arc::new(SingleNode),
                    format!("sqlite:{}", file.display()),
                )
            }
        };
    if database_urls.is_some() && server_config.storage_url.is_none() {
        // Fine for one node; a second node would see the bundles in the
        // database but not their files.
        tracing::warn!(
            "PostgreSQL with bundle files on this node's disk: run one node only, or set \
             UPDRAFT_STORAGE_URL=s3://… so that every node reads every file"
        );
    }
    let data_dir = server_config.data_dir.clone();
    let storage = server_config
        .storage_url
        .clone()
        .unwrap_or_else(|| format!("{}", data_dir.join("blobs").display()));
    let server = updraft_server::Server::bind_in_cluster(
        server_config,
        store,
        cluster,
        Arc::new(updraft_core::model::SystemClock),
    )
    .await?;
    if let Some((email, password)) = bootstrap_admin {
        server
            .state()
            .accounts
            .bootstrap_admin(&email, &password)
            .await
            .map_err(|err| {
                anyhow::anyhow!("UPDRAFT_ADMIN_EMAIL / UPDRAFT_ADMIN_PASSWORD: {err}")
            })?;
    }
    let addr = server.local_addr()?;
    let scheme = if server.is_tls() { "https" } else { "http" };
    tracing::info!(%addr, scheme, data_dir = %data_dir.display(), %database, %storage, "updraft is serving");
    // Stable lines on stdout that scripts (and the tests) can wait for.
    if let Some(metrics) = server.metrics_addr() {
        println!("updraft metrics on http://{metrics}/metrics");
    }
    if let Some(redirect) = server.redirect_addr() {
        println!("updraft redirecting http://{redirect} to https");
    }
    println!("updraft listening on {scheme}://{addr}");
    // systemd Type=notify: READY=1 once /readyz answers, STOPPING=1 at the signal.
    let ready_notification = service::spawn_ready_notification(addr, server.is_tls());
    server
        .run(async {
            shutdown_signal().await;
            service::notify_stopping();
        })
        .await?;
    if let Some(task) = ready_notification {
        task.abort();
    }
    Ok(())
}

/// `updraft healthcheck`: the listen address `updraft serve` would use, from
/// the same flags, environment and `updraft.toml`.
async fn healthcheck(
    sources: config::Sources,
    args: service::HealthcheckArgs,
) -> anyhow::Result<bool> {
    // A URL given is checked as usual; this host's own listener, probed by
    // address, is not what its certificate names.
    let verify_tls = args.url.is_some();
    let url = match args.url {
        Some(url) => url,
        None => {
            let server = config::load(&sources)?.server;
            service::readyz_url(server.listen, server.edge.tls_cert.is_some())
        }
    };
    service::healthcheck(
        &url,
        std::time::Duration::from_secs(args.timeout_secs.max(1)),
        verify_tls,
    )
    .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
