//! The deployment files checked against the code, without a cluster:
//!
//! - `helm/jt`: `values.yaml` validates against `values.schema.json` (and values it must refuse
//!   are refused); every `.Values…` a template reads exists; every service of `jt` is deployed,
//!   `JT_SECRET_KEY` only to the services whose command reads it; the migration hook, the
//!   disruption budgets, the monitoring resources and the locked-down pod are there; the alert
//!   rules (`files/alerts.yaml`) cover the incidents on metric families that exist;
//! - `deploy/compose.yaml`: every chart service with the chart's environment names, NATS,
//!   PostgreSQL, the migration, Prometheus (scraping every service, loading the chart's rules)
//!   and Grafana; the dashboard's queries use only families that exist.
//!
//! Helm itself is not installed on the build machines: `the_chart_renders_with_helm` renders
//! the chart when a `helm` binary is on PATH and says loudly that it did not otherwise (with
//! `JT_REQUIRE_HELM=1` a missing helm fails it). Every other check runs without helm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../src/catalog.rs"]
#[allow(dead_code)]
mod catalog;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

fn values() -> Value {
    yaml("helm/jt/values.yaml")
}

fn schema() -> Value {
    serde_json::from_str(&read("helm/jt/values.schema.json")).unwrap()
}

fn templates() -> Vec<(String, String)> {
    let dir = root().join("helm/jt/templates");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn template(name: &str) -> String {
    read(&format!("helm/jt/templates/{name}"))
}

// --- A JSON Schema validator for the keywords values.schema.json uses (draft 7 subset). ---

fn type_ok(value: &Value, ty: &str) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        "number" => value.is_number(),
        "null" => value.is_null(),
        other => panic!("the validator does not know type {other}"),
    }
}

/// Every violation of `schema` by `value`, with its path.
fn validate(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    const KNOWN: &[&str] = &[
        "$schema",
        "title",
        "description",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "pattern",
    ];
    let obj = schema.as_object().expect("a schema is an object");
    for key in obj.keys() {
        assert!(
            KNOWN.contains(&key.as_str()),
            "{path}: unsupported keyword {key}"
        );
    }
    if let Some(ty) = obj.get("type") {
        let types: Vec<&str> = match ty {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
            _ => panic!("{path}: bad type"),
        };
        if !types.iter().any(|t| type_ok(value, t)) {
            errors.push(format!("{path}: {value} is not {types:?}"));
            return;
        }
    }
    if let Some(allowed) = obj.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = obj.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            errors.push(format!("{path}: {n} < {min}"));
        }
        if let Some(max) = obj.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            errors.push(format!("{path}: {n} > {max}"));
        }
    }
    if let Some(s) = value.as_str() {
        if let Some(min) = obj.get("minLength").and_then(Value::as_u64)
            && (s.chars().count() as u64) < min
        {
            errors.push(format!("{path}: shorter than {min}"));
        }
        if let Some(p) = obj.get("pattern").and_then(Value::as_str)
            && !regex::Regex::new(p).unwrap().is_match(s)
        {
            errors.push(format!("{path}: {s:?} does not match {p}"));
        }
    }
    if let Some(map) = value.as_object() {
        let props = obj.get("properties").and_then(Value::as_object);
        for req in obj
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !map.contains_key(req.as_str().unwrap()) {
                errors.push(format!("{path}: {req} is required"));
            }
        }
        for (k, v) in map {
            let sub = format!("{path}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(s, v, &sub, errors),
                None => match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{sub}: not allowed")),
                    Some(s @ Value::Object(_)) => validate(s, v, &sub, errors),
                    _ => {}
                },
            }
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(min) = obj.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            errors.push(format!("{path}: fewer than {min} items"));
        }
        if let Some(s) = obj.get("items") {
            for (i, v) in items.iter().enumerate() {
                validate(s, v, &format!("{path}[{i}]"), errors);
            }
        }
    }
}

fn violations(value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    validate(&schema(), value, "values", &mut errors);
    errors
}

fn set(value: &mut Value, path: &str, to: Value) {
    let mut at = value;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        at = at.get_mut(*p).unwrap_or_else(|| panic!("{path}"));
    }
    at.as_object_mut()
        .unwrap()
        .insert((*parts.last().unwrap()).to_owned(), to);
}

#[test]
fn values_yaml_validates_against_the_schema_and_the_schema_refuses_bad_values() {
    assert_eq!(violations(&values()), Vec::<String>::new());
    for (path, bad) in [
        ("services.ingest.replicas", json!("two")),
        ("services.ingest.typo", json!(true)),
        ("nats.streamReplicas", json!(7)),
        ("nats.url", json!("http://nats:4222")),
        ("image.pullPolicy", json!("Sometimes")),
        ("terminationGracePeriodSeconds", json!(10)),
        ("podSecurityContext.runAsNonRoot", json!(false)),
        ("services.executor.autoscaling.consumers", json!([])),
        ("services.positions.env", json!({ "JT_RECONCILE_SECS": 60 })),
    ] {
        let mut v = values();
        set(&mut v, path, bad.clone());
        assert!(
            !violations(&v).is_empty(),
            "the schema accepts {path} = {bad}"
        );
    }
    let mut v = values();
    v["services"].as_object_mut().unwrap().remove("risk");
    assert!(
        !violations(&v).is_empty(),
        "the schema accepts a missing service"
    );
}

fn lookup<'a>(mut at: &'a Value, path: &str) -> Option<&'a Value> {
    for p in path.split('.').filter(|p| !p.is_empty()) {
        at = at.get(p)?;
    }
    Some(at)
}

#[test]
fn every_value_a_template_reads_exists_in_values_yaml() {
    let values = values();
    let dotted = regex::Regex::new(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)").unwrap();
    let svc = regex::Regex::new(r"\$svc((?:\.[A-Za-z_][A-Za-z0-9_]*)+)").unwrap();
    let aliases = regex::Regex::new(r"\$(ex|in|api)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)").unwrap();
    let mut checked = 0;
    for (file, text) in templates() {
        for c in dotted.captures_iter(&text) {
            let path = &c[1];
            assert!(
                lookup(&values, path).is_some(),
                "{file} reads .Values{path}, which values.yaml does not have"
            );
            checked += 1;
        }
        // `range $name, $svc := .Values.services`: every service must have the field.
        for c in svc.captures_iter(&text) {
            for (name, s) in values["services"].as_object().unwrap() {
                assert!(
                    lookup(s, &c[1]).is_some(),
                    "{file} reads $svc{} but services.{name} has no such value",
                    &c[1]
                );
            }
            checked += 1;
        }
        for c in aliases.captures_iter(&text) {
            let service = match &c[1] {
                "ex" => "executor",
                "in" => "ingest",
                _ => "api",
            };
            assert!(
                lookup(&values["services"][service], &c[2]).is_some(),
                "{file} reads ${}{} but services.{service} has no such value",
                &c[1],
                &c[2]
            );
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} value references found");
}

/// What each `jt <service>` command reads: `KeySource::Required` means it opens sealed secrets.
fn reads_secret_key(service: &str) -> bool {
    let src = read(&format!("services/jt/src/cmd/{service}.rs"));
    match (
        src.contains("KeySource::Required"),
        src.contains("KeySource::None"),
    ) {
        (true, false) => true,
        (false, true) => false,
        _ => panic!("cannot tell whether jt {service} reads JT_SECRET_KEY"),
    }
}

#[test]
fn the_chart_deploys_every_service_with_the_secret_key_only_where_it_is_read() {
    let values = values();
    let deployed: BTreeSet<&str> = values["services"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let services: BTreeSet<&str> = catalog::SERVICES.iter().copied().collect();
    assert_eq!(deployed, services, "the chart's services are not jt's");
    for service in catalog::SERVICES {
        let main = read("services/jt/src/main.rs");
        let variant = format!("cmd::{service}::run(");
        assert!(main.contains(&variant), "jt has no `{service}` command");
        assert_eq!(
            values["services"][service]["secretKey"].as_bool(),
            Some(reads_secret_key(service)),
            "services.{service}.secretKey must say whether `jt {service}` reads JT_SECRET_KEY"
        );
    }
    assert!(!reads_secret_key("ingest"), "the ingest reads the key now");
    // The key is injected under `if $svc.secretKey` and nowhere else.
    let deployments = template("deployments.yaml");
    let at = deployments.find("JT_SECRET_KEY").unwrap();
    let guard = deployments[..at]
        .rfind("{{- if $svc.secretKey }}")
        .expect("JT_SECRET_KEY is not under `if $svc.secretKey`");
    assert!(
        !deployments[guard..at].contains("{{- end }}"),
        "JT_SECRET_KEY is not under `if $svc.secretKey`"
    );
    assert_eq!(deployments.matches("JT_SECRET_KEY").count(), 1);
    for (file, text) in templates() {
        if file != "deployments.yaml" {
            assert!(
                !text.contains("JT_SECRET_KEY"),
                "{file} injects JT_SECRET_KEY"
            );
        }
    }
}

#[test]
fn the_chart_has_the_migration_hook_budgets_monitoring_and_a_locked_down_pod() {
    let job = template("migrate-job.yaml");
    assert!(
        job.contains("helm.sh/hook: pre-install,pre-upgrade"),
        "{job}"
    );
    assert!(job.contains(r#"args: ["db", "migrate"]"#), "{job}");
    assert!(job.contains("restartPolicy: Never"));
    assert!(!job.contains("JT_SECRET_KEY"));

    let d = template("deployments.yaml");
    // KEDA owns the replica count of an autoscaled service.
    let guard = d
        .find(r#"{{- if not (dig "autoscaling" "enabled" false $svc) }}"#)
        .unwrap();
    let replicas = d.find("replicas: {{ $svc.replicas }}").unwrap();
    assert!(guard < replicas && d[guard..replicas].matches("{{-").count() == 1);
    assert!(d.contains("kind: PodDisruptionBudget"));
    assert!(d.contains("readOnlyRootFilesystem") || d.contains("$.Values.securityContext"));
    assert!(d.contains("toYaml $.Values.podSecurityContext"));
    assert!(d.contains("toYaml $.Values.securityContext"));
    assert!(
        d.contains("mountPath: /tmp"),
        "a read-only root needs a writable /tmp"
    );

    let v = values();
    assert_eq!(v["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(v["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(v["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(v["podSecurityContext"]["runAsNonRoot"], true);
    for (name, s) in v["services"].as_object().unwrap() {
        assert_eq!(s["pdb"]["enabled"], true, "{name} has no disruption budget");
    }
    assert!(
        v["services"]["ingest"]["replicas"].as_u64().unwrap() >= 2,
        "an ingest outage loses alerts: two replicas at least"
    );

    let sm = template("servicemonitor.yaml");
    assert!(sm.contains("kind: ServiceMonitor") && sm.contains("path: /metrics"));
    let rule = template("prometheusrule.yaml");
    assert!(rule.contains("kind: PrometheusRule"));
    assert!(rule.contains(r#".Files.Get "files/alerts.yaml""#));

    let helpers = template("_helpers.tpl");
    for var in [
        "JT_BUS_REPLICAS",
        "NATS_CREDS",
        "NATS_TLS_CA",
        "NATS_TLS_CERT",
        "NATS_TLS_KEY",
    ] {
        assert!(
            helpers.contains(&format!("- name: {var}")),
            "{var} not passed"
        );
        assert!(
            read("services/jt/src/cmd/serve.rs").contains(&format!("\"{var}\"")),
            "the chart passes {var}, which jt does not read"
        );
    }
}

/// The metric names a PromQL expression uses (`jt_…`, `process_…`), histogram series mapped to
/// their family.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\b(jt_[a-z0-9_]+|process_[a-z0-9_]+)").unwrap();
    re.captures_iter(expr)
        .map(|c| {
            let name = c[1].to_owned();
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = name.strip_suffix(suffix)
                    && declared_kind(base) == Some("histogram")
                {
                    return base.to_owned();
                }
            }
            name
        })
        .collect()
}

fn declared_kind(name: &str) -> Option<&'static str> {
    if let Some(d) = catalog::FAMILIES.iter().find(|d| d.family.name == name) {
        return Some(d.family.kind.as_str());
    }
    if name == jt_runtime::metrics::BUILD_INFO.name {
        return Some("gauge");
    }
    jt_runtime::metrics::PROCESS_FAMILIES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, k, _)| k.as_str())
}

#[test]
fn the_alert_rules_cover_the_incidents_on_families_that_exist() {
    let rules = yaml("helm/jt/files/alerts.yaml");
    let mut alerts = BTreeMap::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap().to_owned();
            let expr = rule["expr"].as_str().unwrap().to_owned();
            assert!(
                rule["labels"]["severity"].is_string(),
                "{name}: no severity"
            );
            assert!(
                rule["annotations"]["summary"].is_string(),
                "{name}: no summary"
            );
            let names = metric_names(&expr);
            assert!(!names.is_empty(), "{name}: {expr} uses no jt metric");
            for m in &names {
                assert!(
                    declared_kind(m).is_some(),
                    "{name} uses {m}, which no service registers"
                );
            }
            alerts.insert(name, names);
        }
    }
    // The incidents an operator must hear about, each on the family that measures it.
    for (alert, family) in [
        (
            "JtUnprotectedPosition",
            "jt_executor_unprotected_positions_total",
        ),
        ("JtDeadLetters", "jt_bus_dead_letters_total"),
        ("JtIngestUnavailable", "jt_ingest_requests_total"),
        (
            "JtAccountNeedsReauthentication",
            "jt_positions_accounts_needing_reauth",
        ),
        ("JtConsumerLag", "jt_bus_consumer_pending"),
        ("JtMaxLossBreach", "jt_risk_breaches_total"),
        ("JtLoginsWithoutHolder", "jt_connmgr_logins_held"),
        (
            "JtBrokerBudgetNotShared",
            "jt_broker_shared_budget_fallback_total",
        ),
        (
            "JtBrokerGateNotShared",
            "jt_broker_shared_gate_fallback_total",
        ),
    ] {
        let names = alerts
            .get(alert)
            .unwrap_or_else(|| panic!("no alert {alert}"));
        assert!(names.contains(family), "{alert} does not use {family}");
    }
    // Each alert has its section in the operations guide.
    let ops = read("docs/operations.md");
    for alert in alerts.keys() {
        assert!(
            ops.contains(&format!("### {alert}")),
            "docs/operations.md has no ### {alert}"
        );
    }
}

/// The environment names the chart gives `service` (unconditional ones, the secret key when the
/// service has it, and its `env` values).
fn chart_env(values: &Value, service: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"- name: ([A-Z][A-Z0-9_]+)").unwrap();
    let optional = [
        "NATS_CREDS",
        "NATS_TLS",
        "NATS_TLS_CA",
        "NATS_TLS_CERT",
        "NATS_TLS_KEY",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "JT_SECRET_KEY",
    ];
    let text = template("_helpers.tpl") + &template("deployments.yaml");
    let mut names: BTreeSet<String> = re
        .captures_iter(&text)
        .map(|c| c[1].to_owned())
        .filter(|n| !optional.contains(&n.as_str()))
        .collect();
    if values["services"][service]["secretKey"] == true {
        names.insert("JT_SECRET_KEY".into());
    }
    for k in values["services"][service]["env"]
        .as_object()
        .unwrap()
        .keys()
    {
        names.insert(k.clone());
    }
    names
}

#[test]
fn compose_runs_every_chart_service_with_the_chart_environment_names() {
    let compose = yaml("deploy/compose.yaml");
    let values = values();
    let services = compose["services"].as_object().unwrap();
    for infra in ["nats", "postgres", "migrate", "prometheus", "grafana"] {
        assert!(services.contains_key(infra), "compose has no {infra}");
    }
    assert_eq!(services["migrate"]["command"], json!(["db", "migrate"]));
    assert!(
        services["nats"]["command"]
            .as_array()
            .unwrap()
            .contains(&json!("-js")),
        "NATS without JetStream"
    );
    let scrape = read("deploy/prometheus/prometheus.yml");
    for service in catalog::SERVICES {
        let s = services
            .get(*service)
            .unwrap_or_else(|| panic!("compose has no {service}"));
        assert_eq!(s["command"], json!([service]), "{service}'s command");
        let env: BTreeSet<String> = s["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("{service}: environment must be a map"))
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            env,
            chart_env(&values, service),
            "{service}: compose and chart environments differ"
        );
        assert_eq!(
            s["read_only"], true,
            "{service}: root filesystem not read-only"
        );
        assert_eq!(
            s["cap_drop"],
            json!(["ALL"]),
            "{service}: capabilities kept"
        );
        assert!(
            s["user"].as_str().is_some_and(|u| !u.starts_with("0")),
            "{service} runs as root"
        );
        assert_eq!(
            s["depends_on"]["migrate"]["condition"], "service_completed_successfully",
            "{service} may start before the migration"
        );
        assert!(
            scrape.contains(&format!("\"{service}:8080\"")),
            "Prometheus does not scrape {service}"
        );
    }
    let prom_volumes = services["prometheus"]["volumes"].to_string();
    assert!(
        prom_volumes.contains("../helm/jt/files/alerts.yaml"),
        "{prom_volumes}"
    );
    assert!(scrape.contains("/etc/prometheus/alerts.yaml"));
}

#[test]
fn the_dashboard_queries_only_families_that_exist_and_shows_what_operators_watch() {
    let dash: Value = serde_json::from_str(&read("deploy/grafana/dashboards/jt.json")).unwrap();
    let mut used = BTreeSet::new();
    let mut titles = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap().to_owned();
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{title}: {expr} uses no metric");
            for m in names {
                assert!(
                    declared_kind(&m).is_some(),
                    "{title} queries {m}, which does not exist"
                );
                used.insert(m);
            }
        }
        titles.push(title);
    }
    for (topic, family) in [
        ("Alerts in", "jt_ingest_requests_total"),
        ("Orders out", "jt_executor_intents_total"),
        (
            "Alert → order latency",
            "jt_executor_alert_to_order_seconds",
        ),
        ("Failures by reason", "jt_executor_broker_errors_total"),
        (
            "Unprotected positions and repairs",
            "jt_executor_unprotected_positions_total",
        ),
        ("Broker logins and auth state", "jt_broker_auth_total"),
        ("Consumer lag", "jt_bus_consumer_pending"),
    ] {
        assert!(titles.iter().any(|t| t == topic), "no panel {topic}");
        assert!(used.contains(family), "the dashboard does not use {family}");
    }
}

#[test]
fn the_chart_renders_with_helm() {
    let helm = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("helm"))
            .find(|p| p.is_file())
    });
    let Some(helm) = helm else {
        assert!(
            std::env::var("JT_REQUIRE_HELM").as_deref() != Ok("1"),
            "JT_REQUIRE_HELM=1 but no helm binary on PATH"
        );
        eprintln!(
            "NOT RENDERED: no `helm` on PATH; the chart's structure, values and schema were \
             checked by the other tests of this file (set JT_REQUIRE_HELM=1 to make this fail)"
        );
        return;
    };
    let chart = root().join("helm/jt");
    let run = |args: &[&str]| -> String {
        let out = std::process::Command::new(&helm)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["lint", "--strict", chart.to_str().unwrap()]);
    let docs = |text: &str| -> Vec<Value> {
        text.split("\n---")
            .filter_map(|d| serde_norway::from_str::<Value>(d).ok())
            .filter(|v| v.is_object())
            .collect()
    };
    let plain = docs(&run(&["template", "jt", chart.to_str().unwrap()]));
    let deployments: Vec<&Value> = plain.iter().filter(|d| d["kind"] == "Deployment").collect();
    assert_eq!(deployments.len(), catalog::SERVICES.len());
    for d in &deployments {
        assert!(d["spec"]["replicas"].is_number());
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        let env: Vec<&str> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        let service = c["args"][0].as_str().unwrap();
        assert_eq!(
            env.contains(&"JT_SECRET_KEY"),
            reads_secret_key(service),
            "{service}: {env:?}"
        );
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    }
    assert!(plain.iter().any(|d| d["kind"] == "Job"));
    let scaled = docs(&run(&[
        "template",
        "jt",
        chart.to_str().unwrap(),
        "--set",
        "services.executor.autoscaling.enabled=true",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
    ]));
    let executor = scaled
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "jt-executor")
        .unwrap();
    assert!(
        executor["spec"].get("replicas").is_none(),
        "replicas fights KEDA"
    );
    for kind in ["ScaledObject", "ServiceMonitor", "PrometheusRule"] {
        assert!(scaled.iter().any(|d| d["kind"] == kind), "no {kind}");
    }
}

#[test]
fn keda_scales_the_executor_on_every_orders_partition_by_the_bus_names() {
    // The bus reads ORDERS through one consumer per partition (`execute-p07`); KEDA must name
    // each of them exactly, or it scales on the stream's last sequence.
    let v = values();
    let consumers = v["services"]["executor"]["autoscaling"]["consumers"]
        .as_array()
        .unwrap()
        .clone();
    let defs = jt_bus::Definitions::new(&jt_bus::Namespace::production());
    let orders = consumers
        .iter()
        .find(|c| c["stream"] == "ORDERS")
        .expect("ORDERS is scaled on");
    assert_eq!(orders["consumer"], defs.execute.durable);
    assert_eq!(
        orders["partitions"],
        json!(jt_bus::ORDER_PARTITIONS),
        "one trigger per partition"
    );
    let names: Vec<String> = defs
        .execute
        .server_consumers()
        .iter()
        .map(|c| c.durable.clone())
        .collect();
    assert_eq!(
        names[7],
        format!("{}-{}", defs.execute.durable, jt_bus::partition_token(7))
    );
    // The template spells the partition's name the way `partition_token` does.
    let t = template("executor-scaledobject.yaml");
    assert!(t.contains(r#"printf "%s-p%02d" $c.consumer $p"#), "{t}");
    assert!(t.contains("until (int $c.partitions)"), "{t}");
    let fanout = consumers.iter().find(|c| c["stream"] == "SIGNALS").unwrap();
    assert_eq!(fanout["consumer"], defs.fanout.durable);
    assert!(fanout.get("partitions").is_none());
}
