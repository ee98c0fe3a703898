//! `jt admin create-user` and `jt api-token create` as the built binary, on SQLite and on the
//! harness's PostgreSQL: a fresh install is bootstrapped with a user who can log in and a token
//! that authenticates; bad input and a schema that is behind are refused with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use jt_store::{Role, Secret, Store, StoreConfig};
use jt_testkit::{TempSqlite, TestDatabase};

fn jt(db_url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jt"))
        .args(args)
        .env("DATABASE_URL", db_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running jt");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The value after `label: ` on its own line of `stdout`.
fn printed(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{label}: ")))
        .unwrap_or_else(|| panic!("no `{label}:` line in {stdout}"))
        .to_string()
}

async fn store(url: &str) -> Store {
    Store::connect(&StoreConfig::new(url.to_string()))
        .await
        .expect("store connects")
}

async fn bootstrap_then_token(url: &str) {
    // A fresh database is refused until migrated, naming the command.
    let o = jt(
        url,
        &["admin", "create-user", "--email", "ops@example.com"],
        None,
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("jt db migrate"), "{err}");
    assert!(jt(url, &["db", "migrate"], None).status.success());

    // Generated password, printed once, logs in; the role is admin.
    let o = jt(
        url,
        &[
            "admin",
            "create-user",
            "--email",
            "Ops@Example.com",
            "--admin",
        ],
        None,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("created admin ops@example.com"), "{out}");
    let password = printed(&out, "password");
    let db = store(url).await;
    let admin = db
        .users()
        .authenticate("ops@example.com", &Secret::new(password))
        .await
        .unwrap()
        .expect("the printed password logs in");
    assert_eq!(admin.role, Role::Admin);
    assert!(admin.approved);

    // A password from standard input; nothing printed of it.
    let o = jt(
        url,
        &[
            "admin",
            "create-user",
            "--email",
            "trader@example.com",
            "--password-stdin",
        ],
        Some("a long enough passphrase\n"),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(!out.contains("password:"), "{out}");
    let trader = db
        .users()
        .authenticate(
            "trader@example.com",
            &Secret::new("a long enough passphrase"),
        )
        .await
        .unwrap()
        .expect("the piped password logs in");
    assert_eq!(trader.role, Role::User);

    // Bad input: the rule, a non-zero exit, nothing created.
    for (args, stdin, expected) in [
        (
            vec!["admin", "create-user", "--email", "trader@example.com"],
            None,
            "already registered",
        ),
        (
            vec!["admin", "create-user", "--email", "not-an-address"],
            None,
            "not an e-mail address",
        ),
        (
            vec![
                "admin",
                "create-user",
                "--email",
                "short@example.com",
                "--password-stdin",
            ],
            Some("short\n"),
            "at least",
        ),
        (
            vec![
                "admin",
                "create-user",
                "--email",
                "empty@example.com",
                "--password-stdin",
            ],
            Some(""),
            "held no password",
        ),
        (
            vec!["api-token", "create", "--user", "nobody@example.com"],
            None,
            "no user is registered with the e-mail nobody@example.com",
        ),
    ] {
        let o = jt(url, &args, stdin);
        let (out, err) = text(&o);
        assert!(!o.status.success(), "{args:?} succeeded: {out}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert!(
        db.system()
            .user_by_email("short@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // A token for the trader's scripts authenticates as the trader.
    let o = jt(
        url,
        &[
            "api-token",
            "create",
            "--user",
            "TRADER@example.com",
            "--name",
            "my bot",
            "--expires-days",
            "30",
        ],
        None,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("\"my bot\" for trader@example.com"), "{out}");
    assert!(out.contains("expires"), "{out}");
    let token = printed(&out, "token");
    let who = db
        .api_tokens()
        .resolve(&token)
        .await
        .unwrap()
        .expect("the printed token authenticates");
    assert_eq!(who.user.id, trader.id);
    db.close().await.ok();
}

#[tokio::test]
async fn a_fresh_sqlite_install_is_bootstrapped_from_the_command_line() {
    let db = TempSqlite::new();
    bootstrap_then_token(db.url()).await;
}

#[tokio::test]
async fn a_fresh_postgres_install_is_bootstrapped_from_the_command_line() {
    let db = TestDatabase::create().await;
    bootstrap_then_token(db.url()).await;
}
