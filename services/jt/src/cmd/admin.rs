//! Operator commands on users and API tokens, straight on the database (`DATABASE_URL`,
//! `JT_SECRET_KEY` not needed): `jt admin create-user` bootstraps a fresh install,
//! `jt api-token create` gives a script a token.

use std::io::{BufRead as _, IsTerminal as _};
use std::process::ExitCode;

use anyhow::Context as _;
use jt_store::repo::auth::{MIN_PASSWORD_LEN, NewUser};
use jt_store::{Role, Secret, Store};

use super::serve::{self, KeySource};

/// Options of `jt admin`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// Create a user. The password is read from stdin when it is not a terminal (one line);
    /// otherwise a random one is generated and printed once.
    CreateUser {
        /// The login e-mail.
        #[arg(long)]
        email: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
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
    /// Create an API token for a user and print it once.
    Create {
        /// The user's e-mail.
        #[arg(long)]
        user: String,
        /// A name to tell the token apart.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

async fn store() -> anyhow::Result<Store> {
    // `jt dev`'s SQLite under ./data when DATABASE_URL is unset, so the commands work on the
    // one-machine install too.
    let default = "sqlite://./data/jt.db";
    serve::store(KeySource::None, false, Some(default)).await
}

/// A random password of 24 URL-safe characters (144 bits).
pub fn generated_password() -> Secret {
    Secret::new(jt_store::auth::random_token().expose()[..24].to_string())
}

/// Runs `jt admin …`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let AdminCommand::CreateUser { email, admin } = &args.command;
    let (password, generated) = if std::io::stdin().is_terminal() {
        (generated_password(), true)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            (generated_password(), true)
        } else {
            anyhow::ensure!(
                line.chars().count() >= MIN_PASSWORD_LEN,
                "the password from stdin is shorter than {MIN_PASSWORD_LEN} characters"
            );
            (Secret::new(line), false)
        }
    };
    let user = serve::runtime()?.block_on(async {
        let store = store().await?;
        let user = store
            .users()
            .register(NewUser {
                email: email.clone(),
                display_name: None,
                password: password.clone(),
                role: if *admin { Role::Admin } else { Role::User },
                approved: true,
            })
            .await
            .with_context(|| format!("creating {email}"))?;
        store.close().await.ok();
        anyhow::Ok(user)
    })?;
    println!("created {} ({}) id {}", user.email, user.role, user.id);
    if generated {
        println!("password: {}", password.expose());
        println!("(shown once: keep it, or reset it by e-mail)");
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `jt api-token …`.
pub fn run_token(args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let TokenCommand::Create { user, name } = &args.command;
    let token = serve::runtime()?.block_on(async {
        let store = store().await?;
        let found = store
            .users()
            .by_email(user)
            .await
            .with_context(|| format!("looking up {user}"))?
            .with_context(|| format!("no user has the e-mail {user}"))?;
        let (_, token) = store.api_tokens().create(found.id, name, None).await?;
        store.close().await.ok();
        anyhow::Ok(token)
    })?;
    println!("{}", token.expose());
    eprintln!("(shown once: send it as `Authorization: Bearer <token>`)");
    Ok(ExitCode::SUCCESS)
}
