//! The metrics every service serves, checked on the built binary:
//!
//! - every `counter!`/`gauge!`/`histogram!` of the workspace is declared in the catalog
//!   (`src/catalog.rs`) with its type, and every declared family is emitted somewhere (no
//!   servers needed);
//! - each service (`jt ingest`, `jt executor`, …) started as its own process on the harness's
//!   JetStream and PostgreSQL serves on `/metrics`, before any traffic: `# HELP` and `# TYPE`
//!   for every family, no summary, its catalog's start series at zero, `jt_build_info`, the
//!   process families, and per consumer the bus's lag gauges and dead-letter counters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../src/catalog.rs"]
#[allow(dead_code)]
mod catalog;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jt_runtime::metrics::Kind;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | ".tools" | "node_modules") {
                rust_sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// `(name, kind)` of every metric macro called with a literal `jt_` name in `src` (a file's
/// source); names passed as variables are found by their literal elsewhere.
fn emitted(src: &str) -> Vec<(String, Kind)> {
    let mut found = Vec::new();
    for (macro_name, kind) in [
        ("counter!(", Kind::Counter),
        ("gauge!(", Kind::Gauge),
        ("histogram!(", Kind::Histogram),
    ] {
        for (at, _) in src.match_indices(macro_name) {
            let rest = src[at + macro_name.len()..].trim_start();
            if let Some(lit) = rest.strip_prefix('"') {
                let name: String = lit.chars().take_while(|c| *c != '"').collect();
                if name.starts_with("jt_") && !name.starts_with("jt_test_") {
                    found.push((name, kind));
                }
            }
        }
    }
    found
}

#[test]
fn every_metric_in_the_code_is_declared_with_its_type_and_every_declared_one_is_emitted() {
    let declared: BTreeMap<&str, Kind> = catalog::FAMILIES
        .iter()
        .map(|d| (d.family.name, d.family.kind))
        .collect();
    assert_eq!(
        declared.len(),
        catalog::FAMILIES.len(),
        "a family is declared twice"
    );
    let mut files = Vec::new();
    rust_sources(&workspace().join("libs"), &mut files);
    rust_sources(&workspace().join("services"), &mut files);
    let catalog_file = workspace()
        .join("services/jt/src/catalog.rs")
        .canonicalize()
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut all_sources = String::new();
    for file in files
        .iter()
        .filter(|f| f.canonicalize().unwrap() != catalog_file)
    {
        let src = std::fs::read_to_string(file).unwrap();
        for (name, kind) in emitted(&src) {
            let Some(k) = declared.get(name.as_str()) else {
                panic!(
                    "{} emits {name}, which services/jt/src/catalog.rs does not declare \
                     (add it with its type and help)",
                    file.display()
                );
            };
            assert_eq!(*k, kind, "{name} is a {kind:?} in {}", file.display());
            seen.insert(name);
        }
        all_sources.push_str(&src);
    }
    assert!(
        seen.len() > 60,
        "the scan found only {} families",
        seen.len()
    );
    for d in catalog::FAMILIES {
        assert!(
            all_sources.contains(&format!("\"{}\"", d.family.name)),
            "{} is declared but no code emits it",
            d.family.name
        );
        assert!(
            d.family.help.len() > 20 && !d.family.help.contains('\n'),
            "{}: help must be one sentence",
            d.family.name
        );
        for s in d.services {
            assert!(
                catalog::SERVICES.contains(s),
                "{}: unknown service {s}",
                d.family.name
            );
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on `port` (HTTP/1.0: the body ends with the connection): status and body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// One scrape, parsed: HELP and TYPE by family, and every sample line's name and labels.
#[derive(Debug, Default)]
struct Scrape {
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
    samples: Vec<(String, String)>,
}

fn parse(text: &str) -> Scrape {
    let mut s = Scrape::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            s.help.insert(name.to_owned(), help.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            s.types.insert(name.to_owned(), kind.to_owned());
        } else if !line.starts_with('#') {
            let series = line.rsplit_once(' ').unwrap().0;
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n.to_owned(), l.trim_end_matches('}').to_owned()),
                None => (series.to_owned(), String::new()),
            };
            s.samples.push((name, labels));
        }
    }
    s
}

impl Scrape {
    /// The family a sample belongs to (a histogram's `_bucket`, `_sum`, `_count`).
    fn family_of<'a>(&self, sample: &'a str) -> &'a str {
        if self.types.contains_key(sample) {
            return sample;
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix)
                && self
                    .types
                    .get(base)
                    .is_some_and(|t| t == "histogram" || t == "summary")
            {
                return base;
            }
        }
        sample
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.samples.iter().any(|(n, l)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
        })
    }
}

/// Checks one service's scrape; `Err` says what is missing (it may only be not there yet).
fn check(service: &str, consumers: &[String], text: &str) -> Result<(), String> {
    let s = parse(text);
    for (name, _) in &s.samples {
        let family = s.family_of(name);
        if s.help.get(family).is_none_or(String::is_empty) {
            return Err(format!("{family} has no # HELP"));
        }
        if !s.types.contains_key(family) {
            return Err(format!("{family} has no # TYPE"));
        }
    }
    if let Some((name, _)) = s.types.iter().find(|(_, t)| *t == "summary") {
        return Err(format!(
            "{name} is a summary: it cannot be aggregated across replicas"
        ));
    }
    for d in catalog::FAMILIES
        .iter()
        .filter(|d| d.services.contains(&service))
    {
        let f = d.family;
        for labels in f.start {
            let sample = match f.kind {
                Kind::Histogram => format!("{}_count", f.name),
                _ => f.name.to_owned(),
            };
            if !s.has(&sample, labels) {
                return Err(format!("start series {}{labels:?} is missing", f.name));
            }
        }
        if s.help.contains_key(f.name) {
            let want = f.kind.as_str();
            if s.types.get(f.name).map(String::as_str) != Some(want) {
                return Err(format!("{} is not a {want}", f.name));
            }
        }
    }
    if !s.has("jt_build_info", &[("version", env!("CARGO_PKG_VERSION"))]) {
        return Err("jt_build_info{version} is missing".into());
    }
    for (name, _, _) in jt_runtime::metrics::PROCESS_FAMILIES {
        if !s.has(name, &[]) {
            return Err(format!("{name} is missing"));
        }
    }
    for consumer in consumers {
        for name in [
            "jt_bus_consumer_pending",
            "jt_bus_consumer_ack_pending",
            "jt_bus_dead_letters_total",
            "jt_bus_redeliveries_total",
        ] {
            if !s.has(name, &[("consumer", consumer)]) {
                return Err(format!("{name}{{consumer=\"{consumer}\"}} is missing"));
            }
        }
    }
    Ok(())
}

struct Running(Vec<(String, Child)>);

impl Drop for Running {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_help_type_and_its_start_series_before_any_traffic() {
    let db = jt_testkit::TestDatabase::create().await;
    let store = jt_store::Store::connect(&jt_store::StoreConfig::new(db.url()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let tag = format!("met{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    // The consumers each service runs (their durable names, under the test's namespace).
    let consumers: BTreeMap<&str, Vec<String>> = [
        ("executor", vec!["fanout", "execute"]),
        ("positions", vec!["positions"]),
        ("copier", vec!["copier"]),
        ("risk", vec!["risk", "notify"]),
    ]
    .into_iter()
    .map(|(s, c)| (s, c.into_iter().map(str::to_owned).collect()))
    .collect();
    let mut running = Running(Vec::new());
    let mut ports = BTreeMap::new();
    for service in catalog::SERVICES {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_jt"))
            .arg(service)
            .env("NATS_URL", jt_testkit::nats::nats_url())
            .env("DATABASE_URL", db.url())
            .env("JT_BUS_NAMESPACE", &tag)
            .env("JT_SECRET_KEY", "11".repeat(32))
            .env("JT_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("JT_PUBLIC_URL", "http://127.0.0.1:1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("jt {service} does not start: {e}"));
        running.0.push(((*service).to_owned(), child));
        ports.insert(*service, port);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut pending: BTreeMap<&str, String> = ports
        .keys()
        .map(|s| (*s, "no answer yet".to_owned()))
        .collect();
    while !pending.is_empty() && Instant::now() < deadline {
        for (name, child) in &mut running.0 {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("jt {name} exited with {status} before its metrics were checked");
            }
        }
        let services: Vec<&str> = pending.keys().copied().collect();
        for service in services {
            let Some((200, body)) = get(ports[service], "/metrics") else {
                continue;
            };
            let mine: Vec<String> = consumers.get(service).cloned().unwrap_or_default();
            match check(service, &mine, &body) {
                Ok(()) => {
                    pending.remove(service);
                }
                Err(why) => {
                    pending.insert(service, why);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        pending.is_empty(),
        "within 90 s these services did not serve the expected metrics: {pending:#?}"
    );

    // The API counts requests by route template (never the path sent) and status class.
    let api = ports["api"];
    assert_eq!(get(api, "/api/openapi.json").map(|r| r.0), Some(200));
    let recorder = "/api/v1/recorders/7f1c2d8e-0000-4000-8000-000000000001";
    assert_eq!(get(api, recorder).map(|r| r.0), Some(401));
    let (_, body) = get(api, "/metrics").expect("the API's metrics after traffic");
    let scrape = parse(&body);
    for (route, status) in [
        ("/api/openapi.json", "2xx"),
        ("/api/v1/recorders/{recorder_id}", "4xx"),
    ] {
        assert!(
            scrape.has(
                "jt_api_requests_total",
                &[("route", route), ("method", "GET"), ("status", status)]
            ),
            "no jt_api_requests_total series for GET {route} {status}:\n{body}"
        );
    }
    assert!(
        scrape.has(
            "jt_api_request_duration_seconds_count",
            &[("route", "/api/v1/recorders/{recorder_id}")]
        ),
        "no duration histogram for the recorder route:\n{body}"
    );
    assert!(
        !body.contains("7f1c2d8e"),
        "a path sent by a client leaked into a label:\n{body}"
    );
}

#[test]
fn the_checker_refuses_a_family_without_help_and_a_summary() {
    let without_help = "# TYPE jt_x_total counter\njt_x_total 0\n";
    assert!(
        check("none", &[], without_help)
            .unwrap_err()
            .contains("HELP")
    );
    let summary = "# HELP jt_y_seconds y\n# TYPE jt_y_seconds summary\njt_y_seconds_count 0\n";
    assert!(check("none", &[], summary).is_err());
}
