//! `airlock approvals list|show|approve|deny`: a human's side of the approval flow, through the
//! running gateway's admin API, authenticated with the human's own Airlock token (from
//! `AIRLOCK_TOKEN`, never the command line) and, to decide, a TOTP code.

use crate::exit::{fail, CHECK_FAILED, ENVIRONMENT, INVALID, NOT_FOUND};
use crate::output::Output;
use bytes::Bytes;
use clap::Subcommand;
use http_body_util::{BodyExt, Full};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

/// Approval subcommands.
#[derive(Subcommand, Debug)]
pub enum ApprovalsCmd {
    /// List approval requests (pending by default).
    List {
        /// Show every state: pending, approved, denied, consumed, expired.
        #[arg(long)]
        all: bool,
    },
    /// Show one approval request.
    Show {
        /// The approval id (`apr_…`).
        id: String,
    },
    /// Approve a pending request with your TOTP code.
    Approve(Decide),
    /// Deny a pending request (final) with your TOTP code.
    Deny(Decide),
}

/// What a decision needs.
#[derive(clap::Args, Debug)]
pub struct Decide {
    /// The approval id (`apr_…`).
    id: String,
    /// Your current TOTP code; prompted for when omitted.
    #[arg(long)]
    totp: Option<String>,
    /// Why, for the audit log and the requester.
    #[arg(long, default_value = "")]
    reason: String,
}

struct Admin {
    base: String,
    token: zeroize::Zeroizing<String>,
}

impl Admin {
    fn new(config: &Path, admin: Option<String>) -> anyhow::Result<Admin> {
        let base = match admin {
            Some(a) => a,
            None => {
                crate::context::require_config(config)?;
                let cfg = airlock_config::Config::load(config)?;
                format!("http://{}", cfg.gateway.admin_listen)
            }
        };
        let token = std::env::var("AIRLOCK_TOKEN").map_err(|_| {
            fail(
                INVALID,
                "set AIRLOCK_TOKEN to your own human Airlock token (`airlock token issue --identity YOU ...`); it is never taken from the command line",
            )
        })?;
        Ok(Admin {
            base: base.trim_end_matches('/').to_string(),
            token: zeroize::Zeroizing::new(token.trim().to_string()),
        })
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token.as_str()),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))?;
        let resp = client.request(req).await.map_err(|e| {
            fail(
                ENVIRONMENT,
                format!("cannot reach the gateway's admin API at {} ({e}); is `airlock serve` running? set AIRLOCK_ADMIN_URL otherwise", self.base),
            )
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&bytes).unwrap_or_default()))
    }
}

fn refused(status: u16, v: &serde_json::Value) -> anyhow::Error {
    let message = format!(
        "{}{}",
        v["message"]
            .as_str()
            .unwrap_or("the admin API refused the request"),
        v["hint"]
            .as_str()
            .map(|h| format!(" ({h})"))
            .unwrap_or_default()
    );
    let code = match status {
        404 => NOT_FOUND,
        401 | 403 => CHECK_FAILED,
        409 => INVALID,
        _ => ENVIRONMENT,
    };
    fail(code, message)
}

fn print_approval(a: &serde_json::Value) -> anyhow::Result<()> {
    let s = |k: &str| a[k].as_str().unwrap_or("-").to_string();
    outln!("id:          {}", s("id"))?;
    outln!("state:       {}", s("state"))?;
    outln!(
        "requester:   {} ({}, owner {})",
        s("requester"),
        s("requester_kind"),
        s("owner")
    )?;
    outln!("operation:   {}", s("operation"))?;
    outln!("resource:    {} in {}", s("resource"), s("environment"))?;
    outln!("why:         {}", s("reason"))?;
    outln!("created:     {}", s("created_at"))?;
    outln!("expires:     {}", s("expires_at"))?;
    let approvers: Vec<&str> = a["approvers"]
        .as_array()
        .map(|v| v.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    outln!(
        "approvals:   {} of {} ({})",
        approvers.len(),
        a["approvals_needed"].as_u64().unwrap_or(1),
        if approvers.is_empty() {
            "none yet".to_string()
        } else {
            approvers.join(", ")
        }
    )
}

fn read_code() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("TOTP code: ");
        std::io::stderr().flush()?;
    }
    // A TOTP code is six digits; never buffer more than a short line.
    let mut line = String::new();
    std::io::stdin().lock().take(64).read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// Runs an approvals subcommand.
pub fn run(config: &Path, cmd: ApprovalsCmd, out: &Output) -> anyhow::Result<ExitCode> {
    let admin = Admin::new(config, std::env::var("AIRLOCK_ADMIN_URL").ok())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cmd {
            ApprovalsCmd::List { all } => {
                let path = if all {
                    "/api/approvals".to_string()
                } else {
                    "/api/approvals?state=pending".to_string()
                };
                let (status, v) = admin.call("GET", &path, None).await?;
                if status != 200 {
                    return Err(refused(status, &v));
                }
                let list = v["approvals"].as_array().cloned().unwrap_or_default();
                if out.json() {
                    out.lines(&list)?;
                } else {
                    let s =
                        |a: &serde_json::Value, k: &str| a[k].as_str().unwrap_or("-").to_string();
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|a| {
                            vec![
                                s(a, "id"),
                                s(a, "state"),
                                format!("{} ({})", s(a, "requester"), s(a, "requester_kind")),
                                s(a, "operation"),
                                s(a, "resource"),
                                s(a, "environment"),
                                s(a, "expires_at"),
                            ]
                        })
                        .collect();
                    out.table(
                        &[
                            "ID",
                            "STATE",
                            "REQUESTER",
                            "OPERATION",
                            "RESOURCE",
                            "ENV",
                            "EXPIRES",
                        ],
                        &rows,
                    )?;
                }
            }
            ApprovalsCmd::Show { id } => {
                let (status, v) = admin
                    .call("GET", &format!("/api/approvals/{id}"), None)
                    .await?;
                if status != 200 {
                    return Err(refused(status, &v));
                }
                if out.json() {
                    out.value(&v["approval"])?;
                } else {
                    print_approval(&v["approval"])?;
                }
            }
            ApprovalsCmd::Approve(d) => decide(&admin, d, true, out).await?,
            ApprovalsCmd::Deny(d) => decide(&admin, d, false, out).await?,
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn decide(admin: &Admin, d: Decide, approve: bool, out: &Output) -> anyhow::Result<()> {
    let code = match d.totp {
        Some(c) => c,
        None => read_code()?,
    };
    let verb = if approve { "approve" } else { "deny" };
    let (status, v) = admin
        .call(
            "POST",
            &format!("/api/approvals/{}/{verb}", d.id),
            Some(serde_json::json!({ "totp": code, "reason": d.reason })),
        )
        .await?;
    if status != 200 {
        return Err(refused(status, &v));
    }
    if out.json() {
        out.value(&v["approval"])?;
    } else {
        let a = &v["approval"];
        outln!(
            "{} is now {}",
            a["id"].as_str().unwrap_or(&d.id),
            a["state"].as_str().unwrap_or("?")
        )?;
        if a["state"] == "pending" {
            outln!(
                "it needs {} approvals; another human must approve too",
                a["approvals_needed"]
            )?;
        }
    }
    Ok(())
}
