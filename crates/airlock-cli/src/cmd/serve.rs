//! `airlock serve`: run the gateway in the foreground until SIGINT or SIGTERM.

use crate::output::Output;
use std::path::Path;
use std::process::ExitCode;

/// Arguments of `airlock serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {}

/// Starts the gateway, prints where it listens (one line on stdout, JSON with `--json`), and
/// drains in-flight requests on shutdown.
pub fn run(config: &Path, _args: ServeArgs, out: &Output) -> anyhow::Result<ExitCode> {
    crate::context::require_config(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let running = airlock_gateway::start(config).await?;
        let b = running.bound().clone();
        let line = if out.json() {
            serde_json::to_string(&b)?
        } else {
            let mut parts = Vec::new();
            if let Some(p) = b.proxy {
                parts.push(format!("proxy http://{p}"));
            }
            for (name, a) in &b.upstreams {
                parts.push(format!("{name} http://{a}"));
            }
            for (name, a) in &b.databases {
                parts.push(format!("{name} postgres://{a}"));
            }
            for (name, path) in &b.sockets {
                parts.push(format!("{name} unix:{}", path.display()));
            }
            parts.push(format!("admin http://{}", b.admin));
            format!("airlock gateway listening: {}", parts.join(", "))
        };
        // The line is for whoever started the gateway; a closed or failing stdout must not stop
        // it serving.
        let announced = outln!("{line}").and_then(|()| {
            use std::io::Write;
            std::io::stdout()
                .flush()
                .map_err(crate::output::stdout_error)
        });
        if let Err(e) = announced {
            tracing::warn!(error = %crate::exit::message(&e), "could not print where the gateway listens");
        }
        wait_for_signal().await;
        eprintln!("airlock: shutting down, draining in-flight requests");
        running.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
