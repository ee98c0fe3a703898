//! NATS credentials (`NATS_CREDS`), end to end on the built binary: a nats-server in operator
//! mode (decentralised JWT auth, as NGS or a production NATS with `nsc` runs), whose operator,
//! account and user are made here with NKeys; `jt dead-letters list` — which connects and
//! provisions JetStream like every service (`serve::bus`) — connects with the user's
//! credentials file and is refused without it, or with a user its account never signed.
//! Needs the harness's nats-server binary (`scripts/test-services` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use serde_json::{Value, json};

mod nats_access;

use nats_access::{Dir, free_port, jt, start_server};

/// A NATS JWT (`ed25519-nkey`): `subject`'s claims of `kind`, signed by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let header = json!({"typ": "JWT", "alg": "ed25519-nkey"});
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "jti": format!("JT{}", uuid::Uuid::new_v4().simple()).to_uppercase(),
        "iat": now,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = issuer.sign(signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// An account's claims, with JetStream enabled (unlimited) or not (the system account must not
/// have it).
fn account(operator: &KeyPair, account: &KeyPair, name: &str, jetstream: bool) -> String {
    let mut limits = json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
    });
    if jetstream {
        for key in ["mem_storage", "disk_storage", "streams", "consumer"] {
            limits[key] = json!(-1);
        }
    }
    let nats = json!({"type": "account", "version": 2, "limits": limits});
    jwt(operator, &account.public_key(), name, nats)
}

/// A credentials file for a user signed by `account` (what `nsc generate creds` writes).
fn creds(dir: &Path, file: &str, account: &KeyPair) -> PathBuf {
    let user = KeyPair::new_user();
    let nats = json!({"type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1});
    let token = jwt(account, &user.public_key(), "jt", nats);
    let seed = user.seed().unwrap();
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            "-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_service_reaches_a_jwt_nats_with_its_credentials_and_is_refused_without_them() {
    let dir = Dir::new("jt-nats-creds");

    let operator = KeyPair::new_operator();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "jt-test",
        json!({"type": "operator", "version": 2}),
    );
    let system = KeyPair::new_account();
    let app = KeyPair::new_account();
    let port = free_port();
    let config = dir.0.join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "listen: \"127.0.0.1:{port}\"\n\
             jetstream {{ store_dir: {store:?} }}\n\
             operator: \"{operator_jwt}\"\n\
             system_account: \"{sys}\"\n\
             resolver: MEMORY\n\
             resolver_preload: {{\n  \"{sys}\": \"{sys_jwt}\"\n  \"{app_pub}\": \"{app_jwt}\"\n}}\n",
            store = dir.0.join("store").to_str().unwrap(),
            sys = system.public_key(),
            sys_jwt = account(&operator, &system, "SYS", false),
            app_pub = app.public_key(),
            app_jwt = account(&operator, &app, "JT", true),
        ),
    )
    .unwrap();
    let log = dir.0.join("nats.log");
    let _server = start_server(&["-c".as_ref(), config.as_os_str()], port, log.clone());
    let url = format!("nats://127.0.0.1:{port}");
    let tag = format!("crd{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);

    let good = creds(&dir.0, "jt.creds", &app);
    let ok = jt(&url, &tag, &[("NATS_CREDS", good.as_os_str())]);
    assert!(
        ok.status.success(),
        "with NATS_CREDS: {}\nserver: {}",
        String::from_utf8_lossy(&ok.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let refused = jt(&url, &tag, &[]);
    assert!(!refused.status.success(), "connected without credentials");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("connecting to the bus"), "{stderr}");

    // A user signed by an account the operator never issued.
    let stranger = creds(&dir.0, "stranger.creds", &KeyPair::new_account());
    let refused = jt(&url, &tag, &[("NATS_CREDS", stranger.as_os_str())]);
    assert!(
        !refused.status.success(),
        "connected with a user of an unknown account"
    );

    // A credentials file that is not there is named, not retried forever.
    let missing = dir.0.join("absent.creds");
    let refused = jt(&url, &tag, &[("NATS_CREDS", missing.as_os_str())]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("absent.creds"), "{stderr}");
}
