//! Stream, consumer and KV bucket definitions: the code is the source of truth.
//!
//! [`Definitions::new`] builds the platform's topology for a namespace; [`crate::Bus::provision`]
//! creates or updates it on the server (idempotent). `nats/definitions.json` is generated from
//! these definitions by a test, so the documented configuration cannot drift from the code.

use std::time::Duration;

use crate::subject::Namespace;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);
const MIB: i64 = 1024 * 1024;
const GIB: i64 = 1024 * MIB;

/// Base stream names (production names; isolated namespaces prefix them).
pub mod names {
    /// Accepted TradingView alerts.
    pub const SIGNALS: &str = "SIGNALS";
    /// Order intents, one per account (work queue).
    pub const ORDERS: &str = "ORDERS";
    /// Events from broker sockets.
    pub const BROKER_EVENTS: &str = "BROKER_EVENTS";
    /// What the executor did.
    pub const EXECUTIONS: &str = "EXECUTIONS";
    /// Operational commands (work queue).
    pub const COMMANDS: &str = "COMMANDS";
    /// Messages that could not be handled.
    pub const DEAD_LETTERS: &str = "DEAD_LETTERS";

    /// Consumer names (durable; every replica binds the same name). KEDA's scaler must name
    /// these exactly: a wrong name makes it scale on the stream's last sequence.
    pub mod consumers {
        /// SIGNALS → ORDERS fan-out (executor).
        pub const FANOUT: &str = "fanout";
        /// ORDERS execution (executor), serial per account; one server-side consumer per
        /// partition (`execute-p00` …), see [`crate::ConsumerDef::server_consumers`].
        pub const EXECUTE: &str = "execute";
        /// BROKER_EVENTS → positions service.
        pub const POSITIONS: &str = "positions";
        /// BROKER_EVENTS → risk service.
        pub const RISK: &str = "risk";
        /// BROKER_EVENTS and EXECUTIONS → copier.
        pub const COPIER: &str = "copier";
        /// EXECUTIONS → api history.
        pub const HISTORY: &str = "history";
        /// COMMANDS execution, serial per account (its own account lock; nothing consumes it yet).
        pub const COMMANDS: &str = "commands";
        /// DEAD_LETTERS → risk service: a `dead_letter` notification per letter.
        pub const NOTIFY: &str = "notify";
    }

    /// KV bucket base names.
    pub mod buckets {
        /// Connection ownership leases (connmgr).
        pub const LEASES: &str = "jt_leases";
        /// Per-account execution locks.
        pub const LOCKS: &str = "jt_locks";
        /// Partition leases and membership of partition-owned consumers (executor).
        pub const PARTITIONS: &str = "jt_partitions";
        /// Breach flags for the trading session (risk).
        pub const FLAGS: &str = "jt_flags";
        /// Attempt counters of serial consumers.
        pub const ATTEMPTS: &str = "jt_attempts";
        /// Each watched account's risk figures, as the risk monitor last wrote them.
        pub const RISK_STATUS: &str = "jt_risk_status";
        /// Each broker login's request budget, shared by the fleet (`jt_net::budget`).
        pub const BROKER_BUDGETS: &str = "jt_broker_budgets";
    }
}

/// How a stream keeps messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Kept until a limit (age, count, bytes) removes them; any number of consumers.
    Limits,
    /// Removed when acknowledged; consumers must not overlap.
    WorkQueue,
}

/// What a full stream does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// Drops the oldest messages.
    Old,
    /// Refuses the new message (the publisher gets an error). Work queues use this: an
    /// unprocessed order is never dropped to make room.
    New,
}

/// A stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDef {
    /// Stream name.
    pub name: String,
    /// Subjects it captures (wildcards allowed).
    pub subjects: Vec<String>,
    /// Retention policy.
    pub retention: Retention,
    /// Maximum message age; `None` keeps messages until acked (work queue) or another limit.
    pub max_age: Option<Duration>,
    /// Maximum total size in bytes.
    pub max_bytes: i64,
    /// Maximum number of messages; `None` for no count limit.
    pub max_msgs: Option<i64>,
    /// What happens when full.
    pub discard: Discard,
    /// De-duplication window for `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    /// Replicas in a clustered JetStream (1 on a single server).
    pub replicas: usize,
    /// What the stream is for.
    pub description: String,
}

/// A KV bucket. Its TTL is the bucket's max age: a key not written for `ttl` disappears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvDef {
    /// Bucket name.
    pub bucket: String,
    /// How long a value lives after its last write; `None` forever.
    pub ttl: Option<Duration>,
    /// Values kept per key (1 = only the latest).
    pub history: i64,
    /// Largest value in bytes.
    pub max_value_size: i32,
    /// Replicas in a clustered JetStream.
    pub replicas: usize,
    /// What the bucket is for.
    pub description: String,
}

/// Serial execution per key across all replicas of a consumer (see `docs/bus.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialDef {
    /// Which subject token (0 = root) names the serial key, e.g. 2 for `jt.orders.<account>`.
    pub key_token: usize,
    /// Prefix of the lock key: consumers with the same prefix and bucket share locks, so
    /// orders and commands for one account never run at the same time.
    pub lock_prefix: String,
    /// The lock bucket; its TTL is the lease TTL.
    pub locks: KvDef,
    /// The attempt-counter bucket.
    pub attempts: KvDef,
    /// Partition-owned execution instead of a lock per message: see [`PartitionsDef`].
    pub partitions: Option<PartitionsDef>,
}

/// A serial consumer whose stream is split into partitions by a subject token, each consumed
/// by one replica at a time (`docs/bus.md`, "Partition-owned execution"). The owner keeps the
/// per-key order itself, so a message costs no lock and no head read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionsDef {
    /// How many partitions (`p00` …).
    pub count: u16,
    /// Which subject token names the partition, e.g. 2 for `jt.orders.<partition>.<account>`.
    pub token: usize,
    /// Partition leases and replica membership; its TTL is the lease TTL.
    pub leases: KvDef,
}

impl ConsumerDef {
    /// The server-side consumers this definition stands for: itself, or one per partition
    /// (`execute-p07` reading `jt.orders.p07.>`).
    #[must_use]
    pub fn server_consumers(&self) -> Vec<ConsumerDef> {
        let Some(parts) = self.serial.as_ref().and_then(|s| s.partitions.as_ref()) else {
            return vec![self.clone()];
        };
        (0..parts.count).map(|p| self.partition(p)).collect()
    }

    /// The server-side consumer of partition `p` (a partitioned definition only).
    #[must_use]
    pub fn partition(&self, p: u16) -> ConsumerDef {
        let token = crate::subject::partition_token(p);
        let filter_subjects = self
            .filter_subjects
            .iter()
            .map(|f| match f.strip_suffix(".>") {
                Some(root) => format!("{root}.{token}.>"),
                None => f.clone(),
            })
            .collect();
        ConsumerDef {
            durable: format!("{}-{token}", self.durable),
            filter_subjects,
            ..self.clone()
        }
    }
}

/// A durable pull consumer shared by every replica of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerDef {
    /// The stream it reads.
    pub stream: String,
    /// Durable name (all replicas bind it).
    pub durable: String,
    /// Subjects it reads; empty for the whole stream.
    pub filter_subjects: Vec<String>,
    /// How long a delivery may go without ack or progress before it is redelivered.
    pub ack_wait: Duration,
    /// Attempts before a message goes to dead letter.
    pub max_deliver: u32,
    /// Delay before attempt n+1 after a failed attempt n (the last value repeats).
    pub backoff: Vec<Duration>,
    /// Deliveries awaiting ack across all replicas (the server stops delivering beyond).
    pub max_ack_pending: i64,
    /// Where its dead letters go.
    pub dead_letter_subject: String,
    /// Serial execution per key, if any.
    pub serial: Option<SerialDef>,
    /// What the consumer is for.
    pub description: String,
}

impl ConsumerDef {
    /// The delay before the next attempt after failed attempt `attempt` (1-based).
    #[must_use]
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let i = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        self.backoff
            .get(i)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::ZERO)
    }
}

/// Everything to provision, in dependency order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// Streams (created first).
    pub streams: Vec<StreamDef>,
    /// KV buckets.
    pub buckets: Vec<KvDef>,
    /// Consumers (created last).
    pub consumers: Vec<ConsumerDef>,
}

impl Topology {
    /// Checks the definitions fit together.
    ///
    /// # Errors
    /// A description of the first problem: a consumer on a stream not in the topology, a
    /// serial consumer on a stream that is not a work queue, overlapping work-queue consumers,
    /// or a zero `max_deliver`.
    pub fn validate(&self) -> Result<(), String> {
        for c in &self.consumers {
            let Some(stream) = self.streams.iter().find(|s| s.name == c.stream) else {
                return Err(format!(
                    "consumer {} reads stream {} which is not defined",
                    c.durable, c.stream
                ));
            };
            if c.max_deliver == 0 {
                return Err(format!("consumer {} has max_deliver 0", c.durable));
            }
            if c.serial.is_some() && stream.retention != Retention::WorkQueue {
                return Err(format!(
                    "consumer {} is serial but {} is not a work queue: serial order relies on acked messages leaving the stream",
                    c.durable, c.stream
                ));
            }
            if stream.retention == Retention::WorkQueue {
                let others = self
                    .consumers
                    .iter()
                    .filter(|o| o.stream == c.stream && o.durable != c.durable)
                    .count();
                if others > 0 {
                    return Err(format!(
                        "work-queue stream {} has more than one consumer; every replica binds the one durable",
                        c.stream
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The platform's definitions for one namespace. Services take the consumer they run from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definitions {
    /// The namespace they live in.
    pub namespace: Namespace,
    /// `jt.signals.<recorder>`: work queue (serial fan-out per recorder), 5 min de-duplication.
    pub signals: StreamDef,
    /// `jt.orders.<partition>.<account>`: work queue.
    pub orders: StreamDef,
    /// `jt.broker.<account>.<entity>`: limits, 1 day.
    pub broker_events: StreamDef,
    /// `jt.executions.<account>`: limits, 7 days.
    pub executions: StreamDef,
    /// `jt.cmd.<kind>.<account>`: work queue.
    pub commands: StreamDef,
    /// `jt.dlq.<stream>.<consumer>`: limits, 30 days.
    pub dead_letters: StreamDef,
    /// Executor fan-out on SIGNALS.
    pub fanout: ConsumerDef,
    /// Executor execution on ORDERS, serial per account.
    pub execute: ConsumerDef,
    /// Positions service on BROKER_EVENTS.
    pub positions: ConsumerDef,
    /// Risk service on BROKER_EVENTS.
    pub risk: ConsumerDef,
    /// Copier on BROKER_EVENTS.
    pub copier_events: ConsumerDef,
    /// Api history on EXECUTIONS.
    pub history: ConsumerDef,
    /// Copier on EXECUTIONS.
    pub copier_executions: ConsumerDef,
    /// Command execution on COMMANDS, serial per account.
    pub commands_consumer: ConsumerDef,
    /// Risk service on DEAD_LETTERS: notifies the operators (and the owner) of each letter.
    pub dead_letter_notify: ConsumerDef,
    /// Connection ownership leases, TTL 6 s (renewed every 2 s: a dead replica's logins are
    /// free within 6 s).
    pub leases: KvDef,
    /// Per-account execution locks, TTL 15 s.
    pub locks: KvDef,
    /// Partition leases and executor membership (partition-owned ORDERS), TTL 15 s.
    pub partitions: KvDef,
    /// Session breach flags, TTL 3 days.
    pub flags: KvDef,
    /// Attempt counters of serial consumers, TTL 7 days.
    pub attempts: KvDef,
    /// Each watched account's day P&L, limits and distances (risk monitor → API), TTL 1 day:
    /// rewritten at least every few seconds while the account is watched, so a value's
    /// `as_of` shows when it went stale and the key is gone a day after the monitor stopped.
    pub risk_status: KvDef,
    /// Each broker login's request budget as the fleet spent it (granted calls per bucket of
    /// its window, the broker's cool-down), TTL 2 hours: rewritten at every claim, gone a while
    /// after the longest budget window (Tradovate's hour) once the login is idle.
    pub broker_budgets: KvDef,
}

impl Definitions {
    /// The platform's definitions in `namespace` (single replica).
    #[must_use]
    pub fn new(namespace: &Namespace) -> Self {
        use names::{buckets, consumers};
        let ns = namespace;
        let s = ns.subjects();
        let stream =
            |base: &str, kind: &str, retention, max_age, max_bytes, discard, dup, what: &str| {
                StreamDef {
                    name: ns.stream_name(base),
                    subjects: vec![s.all(kind)],
                    retention,
                    max_age,
                    max_bytes,
                    max_msgs: None,
                    discard,
                    duplicate_window: dup,
                    replicas: 1,
                    description: what.to_owned(),
                }
            };
        // A work queue, not a 7-day log: the fan-out must handle one recorder's signals in
        // order (an entry and the close after it must not fan out concurrently), and the serial
        // gate needs work-queue semantics. Signals are kept in the database (`signals` table,
        // with their payload) for the audit trail. Full = refuse: the webhook is answered with
        // an error rather than a queued signal being dropped to make room.
        let signals = stream(
            names::SIGNALS,
            "signals",
            Retention::WorkQueue,
            None,
            GIB,
            Discard::New,
            5 * MINUTE,
            "accepted TradingView alerts, one subject per recorder; removed when fanned out",
        );
        let orders = stream(
            names::ORDERS,
            "orders",
            Retention::WorkQueue,
            None,
            GIB,
            Discard::New,
            5 * MINUTE,
            "order intents, one subject per account within its partition; removed when executed",
        );
        let broker_events = stream(
            names::BROKER_EVENTS,
            "broker",
            Retention::Limits,
            Some(DAY),
            2 * GIB,
            Discard::Old,
            2 * MINUTE,
            "events from broker sockets, per account and entity",
        );
        let executions = stream(
            names::EXECUTIONS,
            "executions",
            Retention::Limits,
            Some(7 * DAY),
            GIB,
            Discard::Old,
            2 * MINUTE,
            "what the executor did, per account",
        );
        let commands = stream(
            names::COMMANDS,
            "cmd",
            Retention::WorkQueue,
            None,
            256 * MIB,
            Discard::New,
            2 * MINUTE,
            "operational commands per kind and account; removed when executed",
        );
        let dead_letters = stream(
            names::DEAD_LETTERS,
            "dlq",
            Retention::Limits,
            Some(30 * DAY),
            GIB,
            Discard::Old,
            2 * MINUTE,
            "messages that could not be handled, with the reason",
        );

        let kv = |base: &str, ttl, what: &str| KvDef {
            bucket: ns.bucket_name(base),
            ttl,
            history: 1,
            max_value_size: 64 * 1024,
            replicas: 1,
            description: what.to_owned(),
        };
        let leases = kv(
            buckets::LEASES,
            Some(Duration::from_secs(6)),
            "connection ownership leases (connmgr)",
        );
        let locks = kv(
            buckets::LOCKS,
            Some(Duration::from_secs(15)),
            "per-account execution locks",
        );
        let partitions = kv(
            buckets::PARTITIONS,
            Some(Duration::from_secs(15)),
            "partition leases and replica membership of partition-owned consumers (executor)",
        );
        let flags = kv(
            buckets::FLAGS,
            Some(3 * DAY),
            "breach flags for the trading session",
        );
        let attempts = kv(
            buckets::ATTEMPTS,
            Some(7 * DAY),
            "attempt counters of serial consumers",
        );
        let risk_status = kv(
            buckets::RISK_STATUS,
            Some(DAY),
            "each watched account's day P&L, limits and distances (risk monitor)",
        );
        let broker_budgets = kv(
            buckets::BROKER_BUDGETS,
            Some(2 * 60 * MINUTE),
            "each broker login's request budget, shared by the fleet (calls granted per bucket)",
        );

        let consumer = |stream: &StreamDef,
                        durable: &str,
                        max_deliver,
                        backoff: Vec<Duration>,
                        max_ack_pending,
                        what: &str| ConsumerDef {
            stream: stream.name.clone(),
            durable: durable.to_owned(),
            filter_subjects: stream.subjects.clone(),
            ack_wait: Duration::from_secs(30),
            max_deliver,
            backoff,
            max_ack_pending,
            dead_letter_subject: s.dead_letter(&stream.name, durable),
            serial: None,
            description: what.to_owned(),
        };
        let retry = vec![
            Duration::from_secs(1),
            Duration::from_secs(5),
            Duration::from_secs(30),
            2 * MINUTE,
        ];
        let serial = |key_token| SerialDef {
            key_token,
            lock_prefix: "account".to_owned(),
            locks: locks.clone(),
            attempts: attempts.clone(),
            partitions: None,
        };
        let mut fanout = consumer(
            &signals,
            consumers::FANOUT,
            5,
            retry.clone(),
            1024,
            "executor: one order intent per linked account, serial per recorder",
        );
        fanout.serial = Some(SerialDef {
            key_token: 2,
            lock_prefix: "recorder".to_owned(),
            locks: locks.clone(),
            attempts: attempts.clone(),
            partitions: None,
        });
        let mut execute = consumer(
            &orders,
            consumers::EXECUTE,
            5,
            retry.clone(),
            1024,
            "executor: execute intents, serial per account",
        );
        // `jt.orders.<partition>.<account>`: serial per account (token 3), each partition
        // (token 2) executed by one replica at a time.
        execute.serial = Some(SerialDef {
            partitions: Some(PartitionsDef {
                count: crate::subject::ORDER_PARTITIONS,
                token: 2,
                leases: partitions.clone(),
            }),
            ..serial(3)
        });
        let events_retry = vec![
            Duration::from_secs(1),
            Duration::from_secs(5),
            Duration::from_secs(30),
        ];
        let positions = consumer(
            &broker_events,
            consumers::POSITIONS,
            10,
            events_retry.clone(),
            4096,
            "positions: order/fill/position sync",
        );
        let risk = consumer(
            &broker_events,
            consumers::RISK,
            10,
            events_retry.clone(),
            4096,
            "risk: max daily loss monitor",
        );
        let copier_events = consumer(
            &broker_events,
            consumers::COPIER,
            10,
            events_retry.clone(),
            4096,
            "copier: leader account activity",
        );
        let history = consumer(
            &executions,
            consumers::HISTORY,
            10,
            events_retry.clone(),
            4096,
            "api: execution history",
        );
        let copier_executions = consumer(
            &executions,
            consumers::COPIER,
            10,
            events_retry,
            4096,
            "copier: executions to mirror",
        );
        let mut commands_consumer = consumer(
            &commands,
            consumers::COMMANDS,
            5,
            retry,
            1024,
            "risk/executor: commands, serial per account",
        );
        commands_consumer.serial = Some(serial(3));
        // Its own give-ups land on its own stream (`jt.dlq.DEAD_LETTERS.notify`); the handler
        // settles such a letter after one try, so a store outage cannot loop letters of letters.
        let dead_letter_notify = consumer(
            &dead_letters,
            consumers::NOTIFY,
            10,
            vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
            1024,
            "risk: a dead_letter notification to the operators (and the owner) per letter",
        );

        Self {
            namespace: ns.clone(),
            signals,
            orders,
            broker_events,
            executions,
            commands,
            dead_letters,
            fanout,
            execute,
            positions,
            risk,
            copier_events,
            history,
            copier_executions,
            commands_consumer,
            dead_letter_notify,
            leases,
            locks,
            partitions,
            flags,
            attempts,
            risk_status,
            broker_budgets,
        }
    }

    /// The same definitions with `n` replicas for every stream and bucket (clustered JetStream;
    /// production uses 3).
    #[must_use]
    pub fn with_replicas(mut self, n: usize) -> Self {
        for s in [
            &mut self.signals,
            &mut self.orders,
            &mut self.broker_events,
            &mut self.executions,
            &mut self.commands,
            &mut self.dead_letters,
        ] {
            s.replicas = n;
        }
        for b in [
            &mut self.leases,
            &mut self.locks,
            &mut self.partitions,
            &mut self.flags,
            &mut self.attempts,
            &mut self.risk_status,
            &mut self.broker_budgets,
        ] {
            b.replicas = n;
        }
        for c in [
            &mut self.fanout,
            &mut self.execute,
            &mut self.commands_consumer,
        ] {
            if let Some(serial) = &mut c.serial {
                serial.locks.replicas = n;
                serial.attempts.replicas = n;
                if let Some(parts) = &mut serial.partitions {
                    parts.leases.replicas = n;
                }
            }
        }
        self
    }

    /// Everything, ready for [`crate::Bus::provision`].
    #[must_use]
    pub fn topology(&self) -> Topology {
        Topology {
            streams: vec![
                self.signals.clone(),
                self.orders.clone(),
                self.broker_events.clone(),
                self.executions.clone(),
                self.commands.clone(),
                self.dead_letters.clone(),
            ],
            buckets: vec![
                self.leases.clone(),
                self.locks.clone(),
                self.partitions.clone(),
                self.flags.clone(),
                self.attempts.clone(),
                self.risk_status.clone(),
                self.broker_budgets.clone(),
            ],
            consumers: vec![
                self.fanout.clone(),
                self.execute.clone(),
                self.positions.clone(),
                self.risk.clone(),
                self.copier_events.clone(),
                self.history.clone(),
                self.copier_executions.clone(),
                self.commands_consumer.clone(),
                self.dead_letter_notify.clone(),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_topology_is_consistent() {
        let d = Definitions::new(&Namespace::production());
        d.topology().validate().unwrap();
        assert_eq!(d.signals.subjects, vec!["jt.signals.>"]);
        assert!(d.signals.duplicate_window >= Duration::from_secs(120));
        assert_eq!(
            d.signals.retention,
            Retention::WorkQueue,
            "serial fan-out per recorder"
        );
        assert_eq!(
            d.signals.discard,
            Discard::New,
            "a queued signal is never dropped"
        );
        assert_eq!(
            d.fanout.serial.as_ref().unwrap().key_token,
            2,
            "jt.signals.<recorder>"
        );
        assert_eq!(d.fanout.serial.as_ref().unwrap().lock_prefix, "recorder");
        assert_eq!(d.orders.retention, Retention::WorkQueue);
        let parts = d.execute.server_consumers();
        assert_eq!(parts.len(), 32, "one server-side consumer per partition");
        assert_eq!(parts[7].durable, "execute-p07");
        assert_eq!(parts[7].filter_subjects, vec!["jt.orders.p07.>"]);
        assert_eq!(d.execute.serial.as_ref().unwrap().key_token, 3);
        assert_eq!(d.fanout.server_consumers(), vec![d.fanout.clone()]);
        assert_eq!(
            d.orders.discard,
            Discard::New,
            "an unprocessed order is never dropped for room"
        );
        assert_eq!(d.broker_events.max_age, Some(DAY));
        assert_eq!(d.executions.max_age, Some(7 * DAY));
        assert_eq!(d.commands.subjects, vec!["jt.cmd.>"]);
        assert_eq!(d.execute.dead_letter_subject, "jt.dlq.ORDERS.execute");
        let exec_lock = d.execute.serial.as_ref().unwrap();
        let cmd_lock = d.commands_consumer.serial.as_ref().unwrap();
        assert_eq!(exec_lock.key_token, 3, "jt.orders.<partition>.<account>");
        assert_eq!(cmd_lock.key_token, 3, "jt.cmd.<kind>.<account>");
        // Orders are serial per account by partition ownership, not by a lock per message;
        // whatever must be serial with an account's orders rides ORDERS (controls, repairs).
        let parts = exec_lock.partitions.as_ref().unwrap();
        assert_eq!((parts.count, parts.token), (32, 2));
        assert_eq!(parts.leases, d.partitions);
        assert!(cmd_lock.partitions.is_none());
    }

    #[test]
    fn replicas_apply_everywhere() {
        let t = Definitions::new(&Namespace::production())
            .with_replicas(3)
            .topology();
        assert!(t.streams.iter().all(|s| s.replicas == 3));
        assert!(t.buckets.iter().all(|b| b.replicas == 3));
        let d = Definitions::new(&Namespace::production()).with_replicas(3);
        let parts = d.execute.serial.unwrap().partitions.unwrap();
        assert_eq!(parts.leases.replicas, 3);
    }

    #[test]
    fn validation_catches_what_the_server_would_refuse_or_we_would_regret() {
        let d = Definitions::new(&Namespace::production());
        let mut t = d.topology();
        let mut second = d.execute.clone();
        second.durable = "other".into();
        t.consumers.push(second);
        assert!(t.validate().unwrap_err().contains("more than one consumer"));

        let mut t = d.topology();
        let mut serial_on_limits = d.history.clone();
        serial_on_limits.serial = d.execute.serial.clone();
        let at = t
            .consumers
            .iter()
            .position(|c| c.durable == d.history.durable)
            .unwrap();
        t.consumers[at] = serial_on_limits;
        assert!(t.validate().unwrap_err().contains("not a work queue"));
    }

    #[test]
    fn backoff_repeats_its_last_step() {
        let d = Definitions::new(&Namespace::production());
        assert_eq!(d.fanout.backoff_after(1), Duration::from_secs(1));
        assert_eq!(d.fanout.backoff_after(4), 2 * MINUTE);
        assert_eq!(d.fanout.backoff_after(40), 2 * MINUTE);
        let mut none = d.fanout.clone();
        none.backoff.clear();
        assert_eq!(none.backoff_after(1), Duration::ZERO);
    }

    #[test]
    fn isolated_definitions_share_nothing_with_production() {
        let p = Definitions::new(&Namespace::production()).topology();
        let t = Definitions::new(&Namespace::unique()).topology();
        for (a, b) in p.streams.iter().zip(&t.streams) {
            assert_ne!(a.name, b.name);
            assert_ne!(a.subjects, b.subjects);
        }
        for (a, b) in p.buckets.iter().zip(&t.buckets) {
            assert_ne!(a.bucket, b.bucket);
        }
    }
}
