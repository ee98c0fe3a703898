//! Every metric family of the platform, in one place: name, type, `# HELP` text, which services
//! emit it and the series that exist from the start (`jt_runtime::metrics::Family`).
//!
//! Why here: only the binary knows which services a process runs, and one list lets a test check
//! that every `counter!`/`gauge!`/`histogram!` in the workspace is declared (with its type), and
//! that every metric the chart's alerts and the Grafana dashboard query exists
//! (`tests/deploy.rs`). The code emitting a metric stays where it is; a new family needs a line
//! here or that test fails.
//!
//! Labels stay bounded (docs/operations.md, "Metrics"). Families whose label values are only
//! known at run time (a consumer's stream, a broker call's class) have no start series: the bus
//! creates its per-consumer series when the consumer starts, the rest on first use.

use jt_runtime::metrics::{Family, Kind};

/// The services of `jt <service>`, in the order the chart and the compose file list them.
pub const SERVICES: &[&str] = &[
    "ingest",
    "executor",
    "api",
    "connmgr",
    "positions",
    "copier",
    "risk",
];

/// Services that call brokers (orders, logins, reads), so the `jt_broker_*` families are theirs.
const BROKER_USERS: &[&str] = &["executor", "api", "connmgr", "positions", "copier", "risk"];
/// Services that consume a JetStream consumer, so the `jt_bus_*` families are theirs.
const CONSUMERS: &[&str] = &["executor", "positions", "copier", "risk"];

/// One declared family and the services that register its start series.
#[derive(Debug, Clone, Copy)]
pub struct Declared {
    /// The family.
    pub family: Family,
    /// The services that emit it (`jt <service>`); `jt dev` runs them all.
    pub services: &'static [&'static str],
}

const fn f(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    services: &'static [&'static str],
    start: &'static [&'static [(&'static str, &'static str)]],
) -> Declared {
    Declared {
        family: Family {
            name,
            kind,
            help,
            start,
        },
        services,
    }
}

use Kind::{Counter as C, Gauge as G, Histogram as H};

const UNLABELLED: &[&[(&str, &str)]] = &[&[]];
const RUNTIME: &[&[(&str, &str)]] = &[];

/// Every family, by area.
pub const FAMILIES: &[Declared] = &[
    // The bus (libs/bus): per consumer, labels `stream` and `consumer`, created when it starts.
    f(
        "jt_bus_dead_letters_total",
        C,
        "Messages a consumer gave up on and moved to DEAD_LETTERS (after max_deliver attempts, or rejected as poison).",
        CONSUMERS,
        RUNTIME,
    ),
    f(
        "jt_bus_undecodable_total",
        C,
        "Deliveries whose message could not be decoded (unknown type or schema version, bad JSON).",
        CONSUMERS,
        RUNTIME,
    ),
    f(
        "jt_bus_redeliveries_total",
        C,
        "Deliveries that retry a failed or crashed attempt (a serial consumer's hand-backs are not counted).",
        CONSUMERS,
        RUNTIME,
    ),
    f(
        "jt_bus_consumer_pending",
        G,
        "Messages of the consumer not yet delivered, sampled every 15 s by each replica (take the max over replicas).",
        CONSUMERS,
        RUNTIME,
    ),
    f(
        "jt_bus_consumer_ack_pending",
        G,
        "Messages delivered to the consumer and not yet acknowledged (in progress or waiting for redelivery), sampled every 15 s.",
        CONSUMERS,
        RUNTIME,
    ),
    f(
        "jt_bus_consumer_redelivered",
        G,
        "Of the messages awaiting acknowledgement, those delivered more than once, sampled every 15 s.",
        CONSUMERS,
        RUNTIME,
    ),
    // Broker access (libs/net, libs/brokers/*).
    f(
        "jt_broker_requests_total",
        C,
        "Broker REST calls by venue, call class and outcome (ok, or the error's kind).",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_request_duration_seconds",
        H,
        "Duration of one broker REST call, by venue and call class.",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_penalties_total",
        C,
        "Penalty tickets (p-ticket: wait before retrying) a broker answered.",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_ambiguous_writes_total",
        C,
        "Order writes whose outcome is unknown (no answer after sending): resolved by reading the broker back.",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_budget_exhausted_total",
        C,
        "Calls refused locally because a login's request budget was spent.",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_shared_budget_fallback_total",
        C,
        "Calls admitted on a login's per-process limits only because the fleet's shared request budget (the jt_broker_budgets KV bucket) could not be reached.",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_shared_gate_fallback_total",
        C,
        "Socket connection attempts admitted on the process's own connect gate only because the fleet's shared gate (its ledger in the jt_broker_budgets KV bucket) could not be reached.",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_lockouts_total",
        C,
        "Logins locked out by a broker after refused credentials or too many attempts.",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_logins_near_budget",
        G,
        "Logins whose token budget use is near the broker's limit.",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_token_budget_used_ratio",
        H,
        "Share of a login's token (session) budget used when a token is taken (0 to 1).",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_ws_connect_in_flight",
        G,
        "Broker WebSocket connections being opened now (bounded by the connect gate).",
        BROKER_USERS,
        UNLABELLED,
    ),
    f(
        "jt_broker_ws_disconnects_total",
        C,
        "Broker WebSocket connections that ended, by venue and reason (lost, planned, fatal, ...).",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_ws_connect_attempts_total",
        C,
        "Broker WebSocket connection attempts, by venue.",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_auth_total",
        C,
        "Broker logins and token renewals (`op`) by venue and outcome (ok, refused, locked_out, rate_limited, ...).",
        BROKER_USERS,
        &[
            &[("broker", "tradovate"), ("op", "login"), ("outcome", "ok")],
            &[
                ("broker", "tradovate"),
                ("op", "login"),
                ("outcome", "refused"),
            ],
            &[("broker", "tradovate"), ("op", "renew"), ("outcome", "ok")],
            &[("broker", "projectx"), ("op", "login"), ("outcome", "ok")],
            &[
                ("broker", "projectx"),
                ("op", "login"),
                ("outcome", "refused"),
            ],
        ],
    ),
    f(
        "jt_broker_session_store_total",
        C,
        "Reads and writes of shared broker sessions in the store (one login shared by replicas), by outcome.",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_events_total",
        C,
        "Events received on broker WebSockets, by venue and entity.",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_replayed_fills_dropped_total",
        C,
        "Fills a broker replayed after a reconnect that were already seen, dropped.",
        BROKER_USERS,
        RUNTIME,
    ),
    f(
        "jt_broker_quotes_dropped_total",
        C,
        "Quotes dropped because the consumer of the market-data feed was behind.",
        BROKER_USERS,
        RUNTIME,
    ),
    // The API (services/api/src/metrics.rs): labels are route templates, created on first use.
    f(
        "jt_api_requests_total",
        C,
        "API and dashboard requests answered, by route template, method and status class.",
        &["api"],
        RUNTIME,
    ),
    f(
        "jt_api_request_duration_seconds",
        H,
        "Time from an API request to its answer (the live stream: to its first byte), by route template.",
        &["api"],
        RUNTIME,
    ),
    // Ingest.
    f(
        "jt_ingest_requests_total",
        C,
        "Webhook requests answered, by result and status class (2xx, 4xx, 5xx: 5xx means the alert was not taken).",
        &["ingest"],
        &[
            &[("result", "queued"), ("status", "2xx")],
            &[("result", "bus_unavailable"), ("status", "5xx")],
            &[("result", "directory_unavailable"), ("status", "5xx")],
        ],
    ),
    f(
        "jt_ingest_answer_seconds",
        H,
        "Time from a webhook request to its answer, by result.",
        &["ingest"],
        &[&[("result", "queued")]],
    ),
    f(
        "jt_ingest_strangers_total",
        C,
        "Webhook requests from unknown tokens or sources, by kind and status (4xx, 429).",
        &["ingest"],
        RUNTIME,
    ),
    f(
        "jt_ingest_directory_stale_total",
        C,
        "Alerts answered from the token directory's cache while the database was unreachable.",
        &["ingest"],
        UNLABELLED,
    ),
    f(
        "jt_ingest_log_queued",
        G,
        "Alert log rows waiting to be written to the database.",
        &["ingest"],
        UNLABELLED,
    ),
    f(
        "jt_ingest_log_written_total",
        C,
        "Alert log rows written.",
        &["ingest"],
        UNLABELLED,
    ),
    f(
        "jt_ingest_log_dropped_total",
        C,
        "Alert log rows dropped (queue full, stopped, shutdown): the alert was still taken, its log row is missing.",
        &["ingest"],
        &[&[("reason", "queue_full")]],
    ),
    f(
        "jt_ingest_log_write_errors_total",
        C,
        "Failed writes of alert log batches, by kind (rejected, unavailable).",
        &["ingest"],
        &[&[("kind", "unavailable")]],
    ),
    f(
        "jt_ingest_log_repaired_total",
        C,
        "Alert log rows written one by one after their batch was refused.",
        &["ingest"],
        UNLABELLED,
    ),
    f(
        "jt_ingest_log_rejected_total",
        C,
        "Alert log rows the database refused even alone.",
        &["ingest"],
        UNLABELLED,
    ),
    f(
        "jt_ingest_log_pruned_total",
        C,
        "Old alert log rows deleted by retention.",
        &["ingest"],
        UNLABELLED,
    ),
    // Executor.
    f(
        "jt_executor_fanout_total",
        C,
        "Signals fanned out to their traders (ok), recorded as a copy of the same alert body received less than 1 s apart (duplicate), or left for a retry.",
        &["executor"],
        &[
            &[("outcome", "ok")],
            &[("outcome", "duplicate")],
            &[("outcome", "retry")],
        ],
    ),
    f(
        "jt_executor_fanout_seconds",
        H,
        "Time to fan one signal out into intents.",
        &["executor"],
        UNLABELLED,
    ),
    f(
        "jt_executor_intents_total",
        C,
        "Intents that reached a final outcome, by stage (fanout, execute) and outcome (filled, accepted, skipped, error, ...).",
        &["executor"],
        &[
            &[("outcome", "skipped"), ("stage", "fanout")],
            &[("outcome", "filled"), ("stage", "execute")],
            &[("outcome", "error"), ("stage", "execute")],
        ],
    ),
    f(
        "jt_executor_execute_seconds",
        H,
        "Time to execute one intent at the broker, by outcome.",
        &["executor"],
        &[&[("outcome", "filled")]],
    ),
    f(
        "jt_executor_alert_to_order_seconds",
        H,
        "Time from the alert's receipt at the ingest to the broker's acknowledgement of the main order.",
        &["executor"],
        UNLABELLED,
    ),
    f(
        "jt_executor_broker_errors_total",
        C,
        "Broker calls of an execution that failed, by error kind.",
        &["executor"],
        RUNTIME,
    ),
    f(
        "jt_executor_unprotected_positions_total",
        C,
        "Positions left open without their protective orders (stop, take-profit): an operator must act.",
        &["executor"],
        UNLABELLED,
    ),
    f(
        "jt_executor_gave_up_total",
        C,
        "Intents given up without being sent, by reason (stale, throttled_stale).",
        &["executor"],
        &[&[("reason", "stale")]],
    ),
    f(
        "jt_executor_paper_skipped_total",
        C,
        "Signals the paper record could not apply, by reason.",
        &["executor"],
        RUNTIME,
    ),
    f(
        "jt_executor_broker_throttled_total",
        C,
        "Times a broker refused calls on a login for a while (rate limit, penalty, lock-out).",
        &["executor"],
        UNLABELLED,
    ),
    f(
        "jt_executor_throttle_waits_total",
        C,
        "Intents handed back to wait for their login's limit, by kind (entry, exit).",
        &["executor"],
        &[&[("kind", "entry")], &[("kind", "exit")]],
    ),
    // Connection manager.
    f(
        "jt_connmgr_logins_wanted",
        G,
        "Logins the platform wants connected (active, not waiting for re-authentication), as this replica's last scan saw them.",
        &["connmgr"],
        UNLABELLED,
    ),
    f(
        "jt_connmgr_logins_held",
        G,
        "Logins this replica holds (their lease and event connection).",
        &["connmgr"],
        UNLABELLED,
    ),
    f(
        "jt_connmgr_logins_connected",
        G,
        "Held logins whose event connection is up.",
        &["connmgr"],
        UNLABELLED,
    ),
    f(
        "jt_connmgr_logins_disconnected",
        G,
        "Held logins whose event connection is down (reconnecting).",
        &["connmgr"],
        UNLABELLED,
    ),
    f(
        "jt_connmgr_logins_claimed_total",
        C,
        "Logins claimed (at start, or taken over from a replica that stopped renewing).",
        &["connmgr"],
        UNLABELLED,
    ),
    f(
        "jt_connmgr_leases_lost_total",
        C,
        "Login leases lost to another replica or not renewed within their TTL.",
        &["connmgr"],
        UNLABELLED,
    ),
    f(
        "jt_connmgr_reconnects_total",
        C,
        "Connected logins that lost their connection.",
        &["connmgr"],
        UNLABELLED,
    ),
    f(
        "jt_connmgr_events_total",
        C,
        "Broker events handled, by entity and outcome (published, duplicate, failed, unattributed).",
        &["connmgr"],
        &[&[("entity", "fill"), ("outcome", "published")]],
    ),
    f(
        "jt_connmgr_quotes_total",
        C,
        "Quotes from a venue's market-data feed, by outcome (published, failed).",
        &["connmgr"],
        RUNTIME,
    ),
    f(
        "jt_connmgr_quote_feed_connected",
        G,
        "1 when this replica's market-data feed of the venue is connected.",
        &["connmgr"],
        RUNTIME,
    ),
    f(
        "jt_connmgr_quote_contracts_subscribed",
        G,
        "Contracts this replica's market-data feed of the venue subscribes.",
        &["connmgr"],
        RUNTIME,
    ),
    // Positions.
    f(
        "jt_positions_events_total",
        C,
        "BROKER_EVENTS messages handled, by entity and outcome (applied, duplicate, stale, ignored, unknown, failed).",
        &["positions"],
        &[&[("entity", "fill"), ("outcome", "applied")]],
    ),
    f(
        "jt_positions_protection_cancelled_total",
        C,
        "Cancelled orders that protected an open position (its stop or take-profit).",
        &["positions"],
        UNLABELLED,
    ),
    f(
        "jt_positions_reconcile_passes_total",
        C,
        "Reconciliation passes over every active sub-account.",
        &["positions"],
        UNLABELLED,
    ),
    f(
        "jt_positions_reconcile_accounts",
        G,
        "Sub-accounts in the last reconciliation pass.",
        &["positions"],
        UNLABELLED,
    ),
    f(
        "jt_positions_reconcile_accounts_failed",
        G,
        "Sub-accounts the last reconciliation pass could not reconcile.",
        &["positions"],
        UNLABELLED,
    ),
    f(
        "jt_positions_reconcile_accounts_total",
        C,
        "Sub-accounts reconciled (ok) or not (broker, store, access).",
        &["positions"],
        &[&[("outcome", "ok")]],
    ),
    f(
        "jt_positions_corrections_total",
        C,
        "Stored positions corrected from the broker's snapshot, by kind (quantity, closed, opened).",
        &["positions"],
        RUNTIME,
    ),
    f(
        "jt_positions_repairs_published_total",
        C,
        "Protection repairs published on ORDERS (a position found without its protective orders).",
        &["positions"],
        &[&[("outcome", "published")]],
    ),
    f(
        "jt_positions_repairs_deferred_total",
        C,
        "Repairs put off because the position was being handled, by reason (intent, orders).",
        &["positions"],
        RUNTIME,
    ),
    f(
        "jt_positions_flattens_published_total",
        C,
        "Auto-flats published on ORDERS after a trader's window closed.",
        &["positions"],
        RUNTIME,
    ),
    f(
        "jt_positions_tokens_renewed_total",
        C,
        "Broker access tokens renewed by the token refresher.",
        &["positions"],
        UNLABELLED,
    ),
    f(
        "jt_positions_relogins_total",
        C,
        "Logins logged in again by the token refresher (their session could not be renewed).",
        &["positions"],
        UNLABELLED,
    ),
    f(
        "jt_positions_reauth_marked_total",
        C,
        "Broker accounts marked 'needs re-authentication' (their credentials were refused).",
        &["positions"],
        UNLABELLED,
    ),
    f(
        "jt_positions_token_refresh_failures_total",
        C,
        "Token refreshes that failed for now, by stage (broker, store).",
        &["positions"],
        &[&[("stage", "broker")]],
    ),
    f(
        "jt_positions_token_passes_total",
        C,
        "Token refresh passes.",
        &["positions"],
        UNLABELLED,
    ),
    f(
        "jt_positions_tokens_due",
        G,
        "Logins due for a token refresh in the last pass.",
        &["positions"],
        UNLABELLED,
    ),
    f(
        "jt_positions_tokens_deferred",
        G,
        "Logins due but left for a later pass (token budget spent) in the last pass.",
        &["positions"],
        UNLABELLED,
    ),
    f(
        "jt_positions_accounts_needing_reauth",
        G,
        "Broker accounts of the whole platform waiting for their owner to re-authenticate: no orders reach them.",
        &["positions"],
        UNLABELLED,
    ),
    f(
        "jt_positions_paper_marks_total",
        C,
        "Paper positions marked by a quote, by outcome.",
        &["positions"],
        RUNTIME,
    ),
    f(
        "jt_positions_paper_closed_total",
        C,
        "Paper trades closed by a price, by reason (take_profit, stop_loss).",
        &["positions"],
        RUNTIME,
    ),
    f(
        "jt_positions_trades_opened_total",
        C,
        "Live trade records opened by a fill (from flat or a flip's remainder).",
        &["positions"],
        RUNTIME,
    ),
    f(
        "jt_positions_trades_closed_total",
        C,
        "Live trade records closed, by reason (take_profit, stop, market, unknown, reconciled).",
        &["positions"],
        RUNTIME,
    ),
    f(
        "jt_positions_trade_fills_out_of_order_total",
        C,
        "Fills older than the latest fill already applied to their contract's trade records, by outcome (rebuilt: the records they land among replayed in broker order; absorbed: older than a reconciled close, no record changed).",
        &["positions"],
        RUNTIME,
    ),
    // Copier.
    f(
        "jt_copier_leader_events_total",
        C,
        "Leader fills seen on BROKER_EVENTS, by outcome (copied, manual, not_leader, leader_off, own_copy, old, failed).",
        &["copier"],
        &[&[("outcome", "copied")], &[("outcome", "failed")]],
    ),
    f(
        "jt_copier_copies_published_total",
        C,
        "Follower intents published on ORDERS (published, duplicate).",
        &["copier"],
        &[&[("outcome", "published")]],
    ),
    f(
        "jt_copier_skipped_total",
        C,
        "Followers skipped for a leader fill, by reason.",
        &["copier"],
        RUNTIME,
    ),
    f(
        "jt_copier_already_copied_total",
        C,
        "Leader fills already copied to a follower (redelivery, replay): nothing published.",
        &["copier"],
        UNLABELLED,
    ),
    f(
        "jt_copier_outcomes_total",
        C,
        "The executor's outcome of copy intents (filled, accepted, skipped, error).",
        &["copier"],
        &[&[("status", "filled")], &[("status", "error")]],
    ),
    f(
        "jt_copier_sync_total",
        C,
        "Follower positions compared by auto-sync, by outcome (in_sync, corrected, left_flat, in_flight, leader_moving, held_back, failed).",
        &["copier"],
        &[&[("outcome", "in_sync")], &[("outcome", "corrected")]],
    ),
    f(
        "jt_copier_protection_total",
        C,
        "Leader take-profit and stop changes copied to a follower, by outcome (published, unchanged, kept, failed).",
        &["copier"],
        &[&[("outcome", "published")], &[("outcome", "unchanged")]],
    ),
    // Risk (registered by the risk service itself, as are the notifier's families).
    f(
        "jt_risk_accounts_watched",
        G,
        "Accounts with a max daily loss the monitor watches now (on the monitor replica).",
        &["risk"],
        UNLABELLED,
    ),
    f(
        "jt_risk_pnl_reads_total",
        C,
        "Broker P&L reads of the monitor, by outcome (ok, failed).",
        &["risk"],
        &[&[("outcome", "ok")], &[("outcome", "failed")]],
    ),
    f(
        "jt_risk_quotes_total",
        C,
        "Quotes received by the risk monitor.",
        &["risk"],
        UNLABELLED,
    ),
    f(
        "jt_risk_breaches_total",
        C,
        "Max-loss breaches judged, by outcome (new: the account is flattened and locked, already, failed: not recorded).",
        &["risk"],
        &[
            &[("outcome", "new")],
            &[("outcome", "already")],
            &[("outcome", "failed")],
        ],
    ),
    f(
        "jt_risk_flattens_total",
        C,
        "Flattens of breached accounts, by outcome (published, retry).",
        &["risk"],
        &[&[("outcome", "published")], &[("outcome", "retry")]],
    ),
    f(
        "jt_risk_kill_switches_total",
        C,
        "Kill switch engagements carried out (executed: flattens published), to do again (retry), or unreadable (invalid).",
        &["risk"],
        &[
            &[("outcome", "executed")],
            &[("outcome", "retry")],
            &[("outcome", "invalid")],
        ],
    ),
    f(
        "jt_notify_deliveries_total",
        C,
        "Notification delivery attempts by channel kind (webhook, discord, email) and outcome (sent, retry, failed).",
        &["risk"],
        &[
            &[("kind", "webhook"), ("outcome", "sent")],
            &[("kind", "webhook"), ("outcome", "failed")],
        ],
    ),
    f(
        "jt_notify_deferred_total",
        C,
        "Due notifications put off without an attempt, by reason (rate_limited, busy, throttled).",
        &["risk"],
        &[&[("reason", "rate_limited")]],
    ),
    f(
        "jt_notify_queue_due",
        G,
        "Notifications due now and not yet sent.",
        &["risk"],
        UNLABELLED,
    ),
];

/// Describes every family (so `# HELP` is there whichever service emits it) and creates the start
/// series of `services`' families, plus `jt_build_info`.
pub fn register(services: &[&str]) {
    let all: Vec<Family> = FAMILIES.iter().map(|d| d.family).collect();
    jt_runtime::metrics::describe(&all);
    let mine: Vec<Family> = FAMILIES
        .iter()
        .filter(|d| d.services.iter().any(|s| services.contains(s)))
        .map(|d| d.family)
        .collect();
    jt_runtime::metrics::register(&mine);
    jt_runtime::metrics::build_info(env!("CARGO_PKG_VERSION"), option_env!("JT_GIT_SHA"));
}
