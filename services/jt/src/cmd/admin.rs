//! Operator commands on the database (`DATABASE_URL`, default `sqlite://./data/jt.db`):
//!
//! - `jt admin create-user --email … [--admin] [--name …] [--password-stdin]`: bootstraps a fresh
//!   install. The password is read from standard input with `--password-stdin` (first line;
//!   scripts pipe it in), or generated and printed once (nothing keeps it in clear).
//! - `jt api-token create --user <email> [--name …] [--expires-days N]`: an API token for a
//!   user's scripts (`Authorization: Bearer …`), printed once; only its hash is stored.
//!
//! Both refuse a database whose schema is behind (`jt db migrate` first) and answer bad input
//! with the field and the rule, exiting non-zero.

use std::io::BufRead as _;
use std::process::ExitCode;

use anyhow::Context as _;
use jt_runtime::telemetry::{LogFormat, TelemetryConfig};
use jt_store::repo::auth::NewUser;
use jt_store::{Role, Secret, Store, StoreConfig};

/// Options of `jt admin`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// Create a user who can log in at once (an admin with `--admin`).
    CreateUser {
        /// Login e-mail.
        #[arg(long)]
        email: String,
        /// Give the user the admin role.
        #[arg(long)]
        admin: bool,
        /// Name shown in the dashboard.
        #[arg(long)]
        name: Option<String>,
        /// Read the password from the first line of standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Options of `jt api-token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Create an API token for a user, printed once.
    Create {
        /// The user's login e-mail.
        #[arg(long)]
        user: String,
        /// A name to tell the token apart in the token list.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Expire the token after this many days (default: never).
        #[arg(long)]
        expires_days: Option<u32>,
    },
}

/// Runs `jt admin …`.
pub fn run_admin(args: &AdminArgs) -> anyhow::Result<ExitCode> {
    let AdminCommand::CreateUser {
        email,
        admin,
        name,
        password_stdin,
    } = &args.command;
    let (password, generated) = if *password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        anyhow::ensure!(
            !password.is_empty(),
            "--password-stdin: standard input held no password (one line expected)"
        );
        (Secret::new(password), false)
    } else {
        (jt_store::auth::random_token(), true)
    };
    let new = NewUser {
        email: email.clone(),
        display_name: name.clone(),
        password: password.clone(),
        role: if *admin { Role::Admin } else { Role::User },
        // Made by an operator: nothing left to approve.
        approved: true,
    };
    with_store(|store| async move {
        let user = store
            .users()
            .register(new)
            .await
            .context("creating the user")?;
        println!(
            "created {} {} ({})",
            if user.role == Role::Admin {
                "admin"
            } else {
                "user"
            },
            user.email,
            user.id.0
        );
        if generated {
            println!("password: {}", password.expose());
            println!("(shown once: nothing keeps it in clear)");
        }
        Ok(())
    })
}

/// Runs `jt api-token …`.
pub fn run_token(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let TokenCommand::Create {
        user,
        name,
        expires_days,
    } = &args.command;
    let expires_at = expires_days.map(|d| chrono::Utc::now() + chrono::Duration::days(d.into()));
    let (email, name) = (user.clone(), name.clone());
    with_store(|store| async move {
        let user = store
            .system()
            .user_by_email(&email)
            .await
            .context("finding the user")?
            .ok_or_else(|| anyhow::anyhow!("no user is registered with the e-mail {email}"))?;
        let (token, secret) = store
            .api_tokens()
            .create(user.id, &name, expires_at)
            .await
            .context("creating the token")?;
        println!(
            "API token \"{}\" for {} ({}){}",
            token.name,
            user.email,
            token.id.0,
            token
                .expires_at
                .map(|t| format!(", expires {}", t.to_rfc3339()))
                .unwrap_or_default()
        );
        println!("token: {}", secret.expose());
        println!("(shown once: use it as `Authorization: Bearer <token>`)");
        Ok(())
    })
}

/// Connects `DATABASE_URL` (refusing a schema that is behind), runs `work`, closes the store.
fn with_store<F, Fut>(work: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let _telemetry = jt_runtime::telemetry::init(&TelemetryConfig {
        service_name: "jt-admin".into(),
        format: LogFormat::Pretty,
        default_filter: "warn".into(),
        otlp_endpoint: None,
    })?;
    let config = StoreConfig::from_lookup(|name| std::env::var(name).ok())?;
    super::serve::runtime()?.block_on(async move {
        let url = config.redacted_url();
        let store = Store::connect(&config)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let pending = store
            .migration_status()
            .await
            .context("reading the schema version")?
            .into_iter()
            .filter(|m| !m.applied)
            .count();
        anyhow::ensure!(
            pending == 0,
            "the database schema of {url} is behind ({pending} pending migrations): run `jt db migrate`"
        );
        let result = work(store.clone()).await;
        store.close().await.ok();
        result
    })?;
    Ok(ExitCode::SUCCESS)
}
