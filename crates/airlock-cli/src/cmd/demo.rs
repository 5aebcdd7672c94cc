//! `airlock demo`: the incident, replayed and stopped, narrated for a newcomer.
//!
//! Everything runs on loopback in a temporary directory: a fake cloud GraphQL API (one endpoint,
//! staging and production volumes, one admin secret), an Airlock store, and the gateway.

use crate::output::Output;
use airlock_audit::Actor;
use airlock_authority::{Authority, IssueRequest, NewIdentity};
use airlock_config::Config;
use airlock_core::{EnvName, IdentityKind, Name, OpClassSet, Secret, SystemClock};
use airlock_seal::MasterKey;
use airlock_store::SqliteStore;
use airlock_testkit::client::graphql;
use airlock_testkit::cloud::FakeCloud;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `airlock demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Keep the demo's directory (config, store, audit log) and print where it is.
    #[arg(long)]
    keep: bool,
}

fn step(n: u32, text: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        outln!("\n\x1b[1m{n}. {text}\x1b[0m")
    } else {
        outln!("\n{n}. {text}")
    }
}

fn say(text: &str) -> anyhow::Result<()> {
    outln!("   {text}")
}

/// Runs the demo.
pub fn run(args: DemoArgs, _out: &Output) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let admin_secret = format!("cloud-admin-{}", std::process::id());

    step(1, "A cloud provider's GraphQL API, as in the incident")?;
    let cloud = FakeCloud::start(&admin_secret).await?;
    say(&format!(
        "http://{}/graphql serves staging AND production volumes behind one endpoint.",
        cloud.addr
    ))?;
    say("It checks nothing but one admin API token. Volumes: vol-stg-1, vol-stg-2, vol-prod-bookings, vol-prod-backups.")?;

    step(2, "Airlock takes the admin token away from agents")?;
    let cfg_path = dir.path().join("airlock.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "{}{}",
            airlock_config::EXAMPLE,
            airlock_testkit::incident_config(cloud.addr)
        ),
    )?;
    let config = Config::load(&cfg_path)?;
    MasterKey::generate()?.write_new(&config.key_path())?;
    let key = MasterKey::load(&config.key_path())?;
    let store = Arc::new(SqliteStore::open(&config.store_path())?);
    let auth = Authority::new(store, config, Arc::new(SystemClock));
    let op = Actor::local_operator();
    let name = |s: &str| Name::new(s);
    auth.add_identity(
        &op,
        NewIdentity {
            name: name("alice")?,
            kind: IdentityKind::Human,
            owner: None,
            purpose: None,
            review_by: None,
            agent_accessible: false,
            environments: vec![],
        },
    )?;
    for (agent, purpose) in [
        ("stage-bot", "staging volume cleanup"),
        ("prod-bot", "production reporting"),
    ] {
        auth.add_identity(
            &op,
            NewIdentity {
                name: name(agent)?,
                kind: IdentityKind::Agent,
                owner: Some(name("alice")?),
                purpose: Some(purpose.into()),
                review_by: None,
                agent_accessible: false,
                environments: vec![],
            },
        )?;
    }
    auth.set_secret(
        &op,
        &key,
        "cloud-admin",
        &EnvName::new("production")?,
        &Secret::new(admin_secret.clone().into_bytes()),
        airlock_authority::KeyChange::Refuse,
    )?;
    say("The admin token is sealed inside Airlock (XChaCha20-Poly1305, key outside the store).")?;
    say("Agents `stage-bot` and `prod-bot`, both owned by the human `alice`, get short-lived Airlock tokens instead:")?;
    let issue = |who: &str, env: &str| -> anyhow::Result<String> {
        let t = auth.issue(
            &op,
            IssueRequest {
                identity: Name::new(who)?,
                environments: vec![EnvName::new(env)?],
                allow: OpClassSet::parse_list("read,write,destructive")?,
                ttl: None,
                resource_scope: None,
            },
        )?;
        Ok(t.token.expose().to_string())
    };
    let staging = issue("stage-bot", "staging")?;
    let production = issue("prod-bot", "production")?;
    say("stage-bot: staging only, read/write/destructive, 1 hour.  prod-bot: production only, same classes, 1 hour.")?;

    step(3, "Start the gateway in front of the API")?;
    let running = airlock_gateway::start(&cfg_path).await?;
    let proxy = running
        .bound()
        .proxy
        .ok_or_else(|| anyhow::anyhow!("the demo gateway has no proxy listener"))?;
    say(&format!(
        "Agents now call http://{proxy}/cloud/graphql with their Airlock token."
    ))?;

    let delete = "mutation { volumeDelete(volumeId: \"vol-prod-bookings\") }";
    step(
        4,
        "The incident: the staging agent deletes the production volume",
    )?;
    say(&format!("stage-bot sends: {delete}"))?;
    let r = graphql(
        proxy,
        "/cloud/graphql",
        Some(&staging),
        delete,
        serde_json::Value::Null,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    say(&format!(
        "-> HTTP {} {}",
        r.status.as_u16(),
        r.json()["error"]
    ))?;
    say(&format!(
        "   {}",
        r.json()["message"].as_str().unwrap_or("")
    ))?;
    say(&format!(
        "   next: {}",
        r.json()["hint"].as_str().unwrap_or("")
    ))?;
    say(&format!(
        "vol-prod-bookings still exists upstream: {}",
        cloud.has("vol-prod-bookings")
    ))?;

    step(
        5,
        "Its normal work still flows: it deletes a staging volume",
    )?;
    let r = graphql(
        proxy,
        "/cloud/graphql",
        Some(&staging),
        "mutation { volumeDelete(volumeId: \"vol-stg-1\") }",
        serde_json::Value::Null,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    say(&format!("-> HTTP {} {}", r.status.as_u16(), r.body))?;

    step(
        6,
        "A production agent: reads pass, the delete waits for a human",
    )?;
    let r = graphql(
        proxy,
        "/cloud/graphql",
        Some(&production),
        "query { volume(id: \"vol-prod-bookings\") { id size } }",
        serde_json::Value::Null,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    say(&format!("read   -> HTTP {} {}", r.status.as_u16(), r.body))?;
    let r = graphql(
        proxy,
        "/cloud/graphql",
        Some(&production),
        delete,
        serde_json::Value::Null,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    say(&format!(
        "delete -> HTTP {} {}: {}",
        r.status.as_u16(),
        r.json()["error"],
        r.json()["message"].as_str().unwrap_or("")
    ))?;

    running.shutdown().await;
    step(7, "Every decision is in the tamper-evident audit log")?;
    for rec in auth.store().audit(&airlock_store::AuditFilter {
        actor_kind: Some(IdentityKind::Agent),
        ..Default::default()
    })? {
        let e = &rec.event;
        say(&format!(
            "#{} {} ({}, owner {}) {} {} in {}: {}{}",
            rec.seq,
            e.actor.id,
            e.actor.kind,
            e.actor.owner.as_deref().unwrap_or("-"),
            e.action,
            e.resource.as_deref().unwrap_or("-"),
            e.environment.as_deref().unwrap_or("-"),
            e.decision,
            // Records without a policy code (an approval request's own record) show none.
            e.details
                .get("code")
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        ))?;
    }
    let verified = auth.store().verify_audit()?.map_err(anyhow::Error::msg)?;
    say(&format!("audit chain verified: {verified} records."))?;
    say("The admin secret never left Airlock: the agents held only their Airlock tokens.")?;

    if args.keep {
        let kept = dir.keep();
        outln!(
            "\nkept: {} (try `AIRLOCK_CONFIG={}/airlock.toml airlock audit list`)",
            kept.display(),
            kept.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
