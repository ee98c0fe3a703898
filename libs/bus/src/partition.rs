//! Partition-owned consumption: a serial consumer (ORDERS) split into partitions, each read by
//! exactly one replica at a time, which keeps the per-key order itself.
//!
//! The gate of [`crate::consume`] pays, for every message, a head read, a KV lock taken and
//! released and a head read under the lock. Here a replica pays a lease per *partition*
//! (renewed every third of its TTL) and nothing per message beyond its delivery and its ack:
//!
//! - **Ownership.** Partition `p` of consumer `execute` is the server-side consumer
//!   `execute-pNN` reading `jt.orders.pNN.>`; the replica holding the KV lease `execute.pNN`
//!   (bucket `jt_partitions`) is the only one pulling from it. Replicas announce themselves
//!   (`execute.member.<owner>`, same TTL) and each takes up to its fair share,
//!   ⌈partitions ÷ replicas⌉; a replica over its share hands partitions back cleanly.
//! - **Order per key.** Messages of a partition arrive in stream order; the owner queues them
//!   per key (the account) and runs one key's messages one at a time, different keys in
//!   parallel. A retry or a wait stays at its key's head *in this process* (the message is kept
//!   and heartbeaten, not handed back), so nothing of the key overtakes it. A key with too many
//!   queued messages hands the newest back (nak) and runs nothing past them until they return.
//! - **Takeover.** The new owner deletes and recreates the partition's consumer when the old
//!   one still had deliveries unacknowledged: the recreated consumer starts at the partition's
//!   oldest unfinished message, so everything comes again in stream order at once (no waiting
//!   for `ack_wait`), and the old owner's deliveries die with the old consumer. When the old
//!   owner did not hand over cleanly (it died or lost its lease), the messages it had been
//!   given wait [`ConsumeOptions::takeover_grace`] before running again, so that a broker call it
//!   may still have had in flight has landed before the handler looks it up.
//! - **Fencing.** An owner stops pulling and stops starting handlers as soon as its lease is in
//!   doubt — two thirds of a TTL without a renewal, well before the server lets it expire — and
//!   cancels `lock_lost` of the handlers running. Handlers keep their own idempotency (the
//!   executor's `sent` state and client order ids) for anything that still overlaps.
//!
//! Attempts: a retry is counted in this process and written to the consumer's attempt
//! counters (`<stream>.<consumer>.<seq>.fail`), which a new owner reads for the messages it
//! inherits; an inherited message also counts the attempt its previous owner may have made.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::bus::Bus;
use crate::consume::{
    ConsumeOptions, Delivery, Incoming, Outcome, Puller, panicked, parse_count,
    send_to_dead_letter, unbound_bucket,
};
use crate::envelope::Message;
use crate::error::{BusError, KvError};
use crate::kv::{KvBucket, Lease, valid_key};
use crate::subject::{SubjectToken, Subjects, partition_token};
use crate::topology::{ConsumerDef, PartitionsDef, SerialDef};

/// What every partition of one consume call shares.
struct Shared<H> {
    bus: Bus,
    /// The consumer as configured (`execute`): dead letters and metrics name it.
    def: ConsumerDef,
    options: ConsumeOptions,
    handler: H,
    attempts: KvBucket,
    leases: KvBucket,
    key_token: usize,
    lock_prefix: String,
    /// Messages held by this replica across its partitions.
    slots: Arc<Semaphore>,
    /// Partitions this replica runs now (a pull's share of the slots is divided by it).
    owned: std::sync::atomic::AtomicUsize,
    /// Messages one key may hold here; beyond, they are handed back.
    max_per_key: usize,
    lease_ttl: Duration,
}

/// Runs a partitioned consumer until `shutdown`; see the module documentation.
pub(crate) async fn consume<M, H, Fut>(
    bus: &Bus,
    def: &ConsumerDef,
    serial: &SerialDef,
    parts: &PartitionsDef,
    options: ConsumeOptions,
    shutdown: CancellationToken,
    handler: H,
) -> Result<(), BusError>
where
    M: Message,
    H: Fn(Incoming<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let leases = bus.kv(&parts.leases).await.map_err(unbound_bucket)?;
    let attempts = bus.kv(&serial.attempts).await.map_err(unbound_bucket)?;
    let Some(lease_ttl) = leases.ttl() else {
        return Err(BusError::InvalidDefinition(format!(
            "partition leases of {} need a bucket with a TTL",
            def.durable
        )));
    };
    // Every partition's consumer must exist before it can be owned (provisioning creates them).
    for p in 0..parts.count {
        let part = def.partition(p);
        if bus.handed_out(&part.stream, &part.durable).await?.is_none() {
            return Err(BusError::NotFound(format!(
                "consumer {} on {}",
                part.durable, part.stream
            )));
        }
    }
    let max_in_flight = options.max_in_flight.max(1);
    let shared = Arc::new(Shared {
        bus: bus.clone(),
        def: def.clone(),
        max_per_key: (max_in_flight / 4).max(2),
        handler,
        attempts,
        leases,
        key_token: serial.key_token,
        lock_prefix: serial.lock_prefix.clone(),
        slots: Arc::new(Semaphore::new(max_in_flight)),
        owned: std::sync::atomic::AtomicUsize::new(1),
        lease_ttl,
        options,
    });
    Owner {
        shared,
        count: parts.count,
        owned: HashMap::new(),
        _message: PhantomData,
    }
    .run(shutdown)
    .await;
    Ok(())
}

/// A partition this replica runs.
struct Owned {
    /// Cancelled to hand the partition back cleanly (over the fair share, or shutting down).
    stop: CancellationToken,
    task: Task<()>,
}

/// A spawned task that is aborted when its handle is dropped: when the consume future is
/// dropped (the replica's work cancelled without a shutdown), nothing it started runs on.
struct Task<T>(Option<tokio::task::JoinHandle<T>>);

impl<T> Task<T> {
    fn spawn<F>(work: F) -> Self
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        Self(Some(tokio::spawn(work)))
    }

    fn is_finished(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished)
    }

    /// Its result; `None` when it panicked (logged) or was aborted.
    async fn join(mut self) -> Option<T> {
        match self.0.take()?.await {
            Ok(out) => Some(out),
            Err(e) => {
                if e.is_panic() {
                    warn!(error = %e, "partition task panicked");
                }
                None
            }
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            handle.abort();
        }
    }
}

/// The replica's side of the partition split: membership, fair share, taking and handing back.
struct Owner<M, H, Fut> {
    shared: Arc<Shared<H>>,
    count: u16,
    owned: HashMap<u16, Owned>,
    _message: PhantomData<fn(M) -> Fut>,
}

impl<M, H, Fut> Owner<M, H, Fut>
where
    M: Message,
    H: Fn(Incoming<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    async fn run(mut self, shutdown: CancellationToken) {
        let every = (self.shared.lease_ttl / 3).max(Duration::from_millis(50));
        let member = member_key(&self.shared.def.durable, &self.shared.options.owner);
        loop {
            self.balance(&member).await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
        for owned in self.owned.values() {
            owned.stop.cancel();
        }
        for (_, owned) in self.owned.drain() {
            owned.task.join().await;
        }
        let _ = self.shared.leases.delete(&member, None).await;
    }

    /// One round: announce this replica, forget finished partitions, then take partitions up
    /// to the fair share or hand back those over it.
    async fn balance(&mut self, member: &str) {
        self.owned.retain(|_, o| !o.task.is_finished());
        let owner = Bytes::copy_from_slice(self.shared.options.owner.as_bytes());
        if let Err(e) = self.shared.leases.put(member, owner).await {
            debug!(error = %e, "membership not written; the share is computed from what is there");
        }
        let prefix = format!("{}.member.", self.shared.def.durable);
        let members = match self.shared.leases.keys().await {
            Ok(keys) => keys
                .iter()
                .filter(|k| k.starts_with(&prefix))
                .count()
                .max(1),
            Err(e) => {
                debug!(error = %e, "members not read; keeping the partitions held");
                return;
            }
        };
        let fair = usize::from(self.count).div_ceil(members);
        self.shared.owned.store(
            self.owned
                .values()
                .filter(|o| !o.stop.is_cancelled())
                .count(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let running: Vec<u16> = self
            .owned
            .iter()
            .filter(|(_, o)| !o.stop.is_cancelled())
            .map(|(p, _)| *p)
            .collect();
        if running.len() > fair {
            let mut extra = running;
            extra.sort_unstable();
            for p in extra.iter().rev().take(extra.len() - fair) {
                info!(
                    partition = p,
                    fair, members, "handing a partition back (over the fair share)"
                );
                if let Some(o) = self.owned.get(p) {
                    o.stop.cancel();
                }
            }
            return;
        }
        // Start the search at a place of our own, so replicas do not all race for p00.
        let start = crate::subject::order_partition(&self.shared.options.owner) % self.count;
        let mut held = running.len();
        let owned = &self.shared.owned;
        for i in 0..self.count {
            if held >= fair {
                break;
            }
            let p = (start + i) % self.count;
            if self.owned.contains_key(&p) {
                continue;
            }
            let key = lease_key(&self.shared.def.durable, p);
            match self
                .shared
                .leases
                .try_acquire(&key, &self.shared.options.owner)
                .await
            {
                Ok(Some(lease)) => {
                    held += 1;
                    owned.store(held, std::sync::atomic::Ordering::Relaxed);
                    let stop = CancellationToken::new();
                    let span = info_span!("bus.partition", consumer = %self.shared.def.durable, partition = p);
                    let task = Task::spawn(
                        run_partition(self.shared.clone(), p, lease, stop.clone()).instrument(span),
                    );
                    self.owned.insert(p, Owned { stop, task });
                }
                Ok(None) => {}
                Err(e) => {
                    debug!(partition = p, error = %e, "partition lease not tried");
                    return;
                }
            }
        }
    }
}

fn lease_key(durable: &str, p: u16) -> String {
    format!("{durable}.{}", partition_token(p))
}

fn clean_key(durable: &str, p: u16) -> String {
    format!("{durable}.{}.clean", partition_token(p))
}

fn member_key(durable: &str, owner: &str) -> String {
    let owner = SubjectToken::escape(owner)
        .map(|t| t.as_str().to_owned())
        .unwrap_or_else(|_| "unnamed".to_owned());
    format!("{durable}.member.{owner}")
}

/// The messages of one partition held by its owner, per key.
#[derive(Default)]
struct Keys {
    per_key: HashMap<String, KeyQueue>,
}

#[derive(Default)]
struct KeyQueue {
    /// Held, not started, by stream sequence.
    waiting: BTreeMap<u64, Held>,
    /// A runner works on this key.
    running: bool,
    /// The message the runner works on now.
    current: Option<u64>,
    /// Handed back (nak) and not yet returned: nothing of the key past the first runs before
    /// it is back.
    away: BTreeSet<u64>,
}

struct Held {
    delivery: Arc<Delivery>,
    /// `None` when the delivery came while no slot was free (pulls running at once overshoot
    /// the free slots; each asks for at most its share, so the overshoot is bounded by about
    /// `max_in_flight`), or for a key's head coming back from a hand-back.
    _slot: Option<OwnedSemaphorePermit>,
}

/// What a partition's takeover found.
#[derive(Clone, Copy)]
struct Inheritance {
    /// Messages up to this sequence may have been worked on by the previous owner.
    up_to: u64,
    /// They run no earlier than this (the previous owner's in-flight calls land first).
    not_before: Instant,
}

struct Partition<M, H, Fut> {
    shared: Arc<Shared<H>>,
    consumer: ConsumerDef,
    keys: Mutex<Keys>,
    inherited: Inheritance,
    /// Cancelled when the lease is lost or in doubt: stop at once.
    lost: CancellationToken,
    /// Cancelled to hand the partition back: stop pulling, let running handlers finish.
    stop: CancellationToken,
    _message: PhantomData<fn(M) -> Fut>,
}

async fn run_partition<M, H, Fut>(
    shared: Arc<Shared<H>>,
    p: u16,
    lease: Lease,
    stop: CancellationToken,
) where
    M: Message,
    H: Fn(Incoming<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let lost = CancellationToken::new();
    let holder_done = CancellationToken::new();
    let holder = Task::spawn(hold(
        lease,
        shared.lease_ttl,
        lost.clone(),
        holder_done.clone(),
    ));
    let consumer = shared.def.partition(p);
    let inherited = match take_over(&shared, &consumer, p).await {
        Ok(i) => i,
        Err(e) => {
            warn!(error = %e, "partition not taken over; it is tried again");
            holder_done.cancel();
            if let Some(Some(lease)) = holder.join().await {
                let _ = lease.release().await;
            }
            return;
        }
    };
    let part = Arc::new(Partition {
        shared: shared.clone(),
        consumer,
        keys: Mutex::new(Keys::default()),
        inherited,
        lost: lost.clone(),
        stop: stop.clone(),
        _message: PhantomData,
    });
    let mut runners = JoinSet::new();
    part.pull_loop(&mut runners).await;
    // Handed back or lost: running handlers finish (a lost lease told them through
    // `lock_lost`); messages not started stay unacknowledged for the next owner.
    let drained = tokio::time::timeout(shared.options.drain_timeout, async {
        while runners.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            "handlers still running at the drain deadline; the next owner waits its grace for them"
        );
        runners.abort_all();
    }
    holder_done.cancel();
    let lease = holder.join().await.flatten();
    if let Some(lease) = lease
        && !lost.is_cancelled()
    {
        // Everything started here has finished: the next owner need not wait a grace.
        if drained.is_ok() {
            let owner = Bytes::copy_from_slice(shared.options.owner.as_bytes());
            let _ = shared
                .leases
                .put(&clean_key(&shared.def.durable, p), owner)
                .await;
        }
        if let Err(e) = lease.release().await {
            debug!(error = %e, "partition lease not released; it expires");
        }
        info!("partition handed back");
    } else {
        warn!("partition lease lost; another replica takes the partition over");
    }
}

/// Renews the lease every third of its TTL until `done`; cancels `lost` as soon as the lease is
/// in doubt: lost to another holder, or two thirds of a TTL without a successful renewal
/// (the server lets it expire only after a whole TTL: the margin is the fence).
async fn hold(
    mut lease: Lease,
    ttl: Duration,
    lost: CancellationToken,
    done: CancellationToken,
) -> Option<Lease> {
    let every = (ttl / 3).max(Duration::from_millis(10));
    let doubt_after = ttl.mul_f64(2.0 / 3.0);
    let mut last_ok = Instant::now();
    loop {
        let next = last_ok + every;
        tokio::select! {
            () = done.cancelled() => return (!lost.is_cancelled()).then_some(lease),
            () = tokio::time::sleep_until(next.max(Instant::now())) => {}
        }
        let started = Instant::now();
        match tokio::time::timeout(every, lease.renew()).await {
            Ok(Ok(())) => last_ok = started,
            Ok(Err(KvError::WrongRevision { .. })) => {
                warn!(key = %lease.key(), "partition lease lost to another holder");
                lost.cancel();
                return None;
            }
            Ok(Err(e)) => warn!(key = %lease.key(), error = %e, "partition lease renewal failed"),
            Err(_) => warn!(key = %lease.key(), "partition lease renewal timed out"),
        }
        if last_ok.elapsed() >= doubt_after {
            warn!(key = %lease.key(), "partition lease in doubt: stopping its work");
            lost.cancel();
            return None;
        }
    }
}

/// Makes the partition's consumer start at its oldest unfinished message, and says which of
/// its messages the previous owner may have been working on.
async fn take_over<H>(
    shared: &Shared<H>,
    consumer: &ConsumerDef,
    p: u16,
) -> Result<Inheritance, BusError> {
    let bus = &shared.bus;
    let clean_key = clean_key(&shared.def.durable, p);
    let handed_clean = matches!(shared.leases.get(&clean_key).await, Ok(Some(_)));
    let out = bus.handed_out(&consumer.stream, &consumer.durable).await?;
    let now = Instant::now();
    let inherited = match out {
        Some(out) if out.ack_pending > 0 => {
            bus.delete_consumer(&consumer.stream, &consumer.durable)
                .await?;
            bus.provision_consumer(consumer).await?;
            let not_before = if handed_clean {
                now
            } else {
                now + shared.options.takeover_grace
            };
            info!(
                in_flight = out.ack_pending,
                up_to = out.last_delivered,
                clean = handed_clean,
                "partition taken over; its consumer starts again at the oldest unfinished message"
            );
            Inheritance {
                up_to: out.last_delivered,
                not_before,
            }
        }
        Some(_) => Inheritance {
            up_to: 0,
            not_before: now,
        },
        None => {
            bus.provision_consumer(consumer).await?;
            Inheritance {
                up_to: 0,
                not_before: now,
            }
        }
    };
    if handed_clean {
        let _ = shared.leases.delete(&clean_key, None).await;
    }
    Ok(inherited)
}

impl<M, H, Fut> Partition<M, H, Fut>
where
    M: Message,
    H: Fn(Incoming<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    fn running(&self) -> bool {
        !self.lost.is_cancelled() && !self.stop.is_cancelled()
    }

    async fn pull_loop(self: &Arc<Self>, runners: &mut JoinSet<()>) {
        let shared = &self.shared;
        let puller = loop {
            match Puller::bind(&shared.bus, &self.consumer.stream, &self.consumer.durable).await {
                Ok(p) => break p,
                Err(e) => {
                    warn!(error = %e, "partition consumer not bound; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = self.lost.cancelled() => return,
                        () = self.stop.cancelled() => return,
                    }
                }
            }
        };
        // A pull never outlives the lease's certainty.
        let expiry = shared
            .options
            .pull_expiry
            .min(shared.lease_ttl / 3)
            .max(Duration::from_millis(50));
        let beat_every = (self.consumer.ack_wait / 3).max(Duration::from_millis(10));
        let mut beat = tokio::time::interval_at(Instant::now() + beat_every, beat_every);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Slots are taken per delivery, not reserved for a pull: every partition keeps a pull
        // waiting at the server, and reserving would let idle partitions' long polls hold the
        // slots a busy one needs. A pull asks for at most the free slots divided among the
        // partitions this replica runs; pulls running at once can overshoot, so a delivery
        // that finds no slot is still taken in when its account can run it (the replica then
        // holds up to about twice `max_in_flight`), and handed back only when its account is
        // full or waits for a handed-back message.
        while self.running() {
            while runners.try_join_next().is_some() {}
            let free = shared.slots.available_permits();
            if free == 0 {
                tokio::select! {
                    p = shared.slots.acquire() => match p {
                        Ok(p) => drop(p),
                        Err(_) => return,
                    },
                    _ = beat.tick() => self.heartbeat().await,
                    () = self.lost.cancelled() => return,
                    () = self.stop.cancelled() => return,
                }
                continue;
            }
            let owned = shared
                .owned
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(1);
            let share = (shared.options.max_in_flight / owned).max(1);
            let mut batch = match puller.pull(free.min(share), expiry).await {
                Ok(b) => b,
                Err(e) => {
                    warn!(error = %e, "pull failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = self.lost.cancelled() => return,
                        () = self.stop.cancelled() => return,
                    }
                }
            };
            loop {
                let item = tokio::select! {
                    item = batch.next() => item,
                    _ = beat.tick() => { self.heartbeat().await; continue; }
                    () = self.lost.cancelled() => return,
                };
                match item {
                    Some(Ok(delivery)) => {
                        let slot = shared.slots.clone().try_acquire_owned().ok();
                        self.take(delivery, slot, runners).await;
                    }
                    Some(Err(e)) => {
                        debug!(error = %e, "pull ended early");
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    /// Tells the server every held message not yet started is still in hand (a started one
    /// is heartbeaten by its runner).
    async fn heartbeat(&self) {
        let held: Vec<Arc<Delivery>> = {
            let keys = self.keys.lock();
            keys.per_key
                .values()
                .flat_map(|q| q.waiting.values().map(|h| h.delivery.clone()))
                .collect()
        };
        for d in held {
            d.progress().await;
        }
    }

    /// Queues a delivery behind its key, or hands it back when its key holds enough already or
    /// waits for a handed-back message (`slot`: the replica's slot for it, `None` when the
    /// pulls running at once took more than were free).
    async fn take(
        self: &Arc<Self>,
        delivery: Delivery,
        slot: Option<OwnedSemaphorePermit>,
        runners: &mut JoinSet<()>,
    ) {
        let subject = delivery.raw().subject.clone();
        let key = match Subjects::token(&subject, self.shared.key_token) {
            Some(token) => format!("{}.{token}", self.shared.lock_prefix),
            None => String::new(),
        };
        if key.is_empty() || !valid_key(&key) {
            let reason = format!(
                "subject {subject} has no usable token {} to serialise on",
                self.shared.key_token
            );
            send_to_dead_letter(
                &self.shared.bus,
                &self.shared.def,
                &delivery,
                delivery.delivered(),
                &reason,
            )
            .await;
            return;
        }
        let seq = delivery.sequence();
        let delivery = Arc::new(delivery);
        let (hand_back, start) = {
            let mut keys = self.keys.lock();
            let q = keys.per_key.entry(key.clone()).or_default();
            let first_away = q.away.first().copied();
            let full = q.waiting.len() + usize::from(q.running) >= self.shared.max_per_key;
            // Held messages must be runnable: nothing is held past a message of its key that
            // is away, or the slots could all be taken by messages waiting for one that cannot
            // come back for want of a slot.
            let admit = match first_away {
                // The key's head is back: it is taken in, slot or not.
                Some(first) if first == seq => true,
                Some(_) => false,
                // Slot or not (pulls running at once overshoot the free slots by a bounded
                // amount): handing back for want of a slot would make the key wait a whole nak
                // delay for nothing.
                None => !full,
            };
            if q.current == Some(seq) {
                // Delivered again while it runs (its ack_wait ran out): the runner settles it.
                (None, false)
            } else if let Some(held) = q.waiting.get_mut(&seq) {
                // A second delivery of a message already held (its ack_wait ran out): keep
                // the newer handle.
                held.delivery = delivery;
                (None, false)
            } else if admit {
                q.away.remove(&seq);
                q.waiting.insert(
                    seq,
                    Held {
                        delivery,
                        _slot: slot,
                    },
                );
                let start = !q.running;
                q.running = true;
                (None, start)
            } else {
                q.away.insert(seq);
                (Some(delivery), false)
            }
        };
        if let Some(d) = hand_back {
            // A constant delay with a spread, as the gate's hand-backs.
            #[allow(clippy::cast_precision_loss)] // a value below 97
            let jitter = 0.8 + 0.4 * ((seq % 97) as f64 / 96.0);
            d.nak(Some(self.shared.options.defer_delay.mul_f64(jitter)))
                .await;
            return;
        }
        if start {
            let part = self.clone();
            let span = info_span!("bus.key", %key);
            runners.spawn(async move { part.run_key(&key).await }.instrument(span));
        }
    }

    /// Runs one key's held messages in stream order until none can run.
    async fn run_key(self: Arc<Self>, key: &str) {
        loop {
            let next = {
                let mut keys = self.keys.lock();
                let Some(q) = keys.per_key.get_mut(key) else {
                    return;
                };
                let first_away = q.away.first().copied();
                let runnable = q
                    .waiting
                    .first_key_value()
                    .is_some_and(|(seq, _)| first_away.is_none_or(|a| *seq < a));
                if !runnable || !self.running() {
                    q.running = false;
                    q.current = None;
                    if q.waiting.is_empty() && q.away.is_empty() {
                        keys.per_key.remove(key);
                    }
                    return;
                }
                let next = q.waiting.pop_first().map(|(_, held)| held);
                q.current = next.as_ref().map(|h| h.delivery.sequence());
                next
            };
            let Some(held) = next else { return };
            self.run_one(&held).await;
            drop(held);
        }
    }

    /// Runs the handler on one message until it is settled (or the partition is lost).
    async fn run_one(&self, held: &Held) {
        let shared = &self.shared;
        let def = &shared.def;
        let delivery = &held.delivery;
        let seq = delivery.sequence();
        let inherited = seq <= self.inherited.up_to;
        // Built only on the rare paths that touch the counter, not for every message.
        let fail_key = || format!("{}.{}.{seq}.fail", def.stream, def.durable);
        let mut failures = if inherited || delivery.delivered() > 1 {
            match shared.attempts.get(&fail_key()).await {
                Ok(Some(e)) => parse_count(&e.value),
                Ok(None) => 0,
                Err(e) => {
                    debug!(error = %e, "failure count not read; counting from here");
                    0
                }
            }
        } else {
            0
        };
        // The previous owner may have tried it: that attempt counts.
        let mut attempt = failures + 1 + u32::from(inherited);
        if inherited && Instant::now() < self.inherited.not_before {
            debug!("inherited from a replica that did not hand over cleanly: waiting its grace");
            if !self.pause_until(delivery, self.inherited.not_before).await {
                return;
            }
        }
        loop {
            if self.lost.is_cancelled() {
                return;
            }
            if attempt > 1 {
                metrics::counter!("jt_bus_redeliveries_total", "stream" => def.stream.clone(), "consumer" => def.durable.clone())
                    .increment(1);
            }
            if attempt > def.max_deliver {
                let reason = format!(
                    "no attempt finished within max_deliver {}: the last one crashed or hung past ack_wait",
                    def.max_deliver
                );
                send_to_dead_letter(&shared.bus, def, delivery, attempt - 1, &reason).await;
                self.forget_failures(&fail_key, failures).await;
                return;
            }
            let outcome = match M::read_envelope(delivery.raw()) {
                Ok(envelope) => {
                    let incoming = Incoming {
                        envelope,
                        subject: delivery.raw().subject.clone(),
                        stream_sequence: seq,
                        attempt,
                        max_attempts: def.max_deliver,
                        lock_lost: self.lost.child_token(),
                    };
                    self.run_handler(delivery, incoming).await
                }
                Err(e) => {
                    metrics::counter!("jt_bus_undecodable_total", "stream" => def.stream.clone(), "consumer" => def.durable.clone())
                        .increment(1);
                    warn!(error = %e, attempt, "message cannot be read by this build; retrying");
                    Outcome::retry(format!("undecodable: {e}"))
                }
            };
            if self.lost.is_cancelled() {
                // The partition is another replica's now: this attempt's end is not ours to
                // record (the new owner counts it as the inherited attempt).
                debug!(
                    attempt,
                    "partition lost while the handler ran; leaving the message to the new owner"
                );
                return;
            }
            match outcome {
                Outcome::Ack => {
                    // Confirmed: a new owner that recreates the consumer right after a clean
                    // hand-over must not get this message again.
                    if let Err(e) = delivery.ack().await {
                        warn!(error = %e, "ack not confirmed; the message may come back and must be handled idempotently");
                    }
                    self.forget_failures(&fail_key, failures).await;
                    return;
                }
                Outcome::Reject { reason } => {
                    send_to_dead_letter(&shared.bus, def, delivery, attempt, &reason).await;
                    self.forget_failures(&fail_key, failures).await;
                    return;
                }
                Outcome::Retry { reason, after } => {
                    if attempt >= def.max_deliver {
                        let reason = format!("gave up after {attempt} attempts: {reason}");
                        send_to_dead_letter(&shared.bus, def, delivery, attempt, &reason).await;
                        self.forget_failures(&fail_key, failures).await;
                        return;
                    }
                    failures += 1;
                    let count = Bytes::from(failures.to_string());
                    if let Err(e) = shared.attempts.put(&fail_key(), count).await {
                        debug!(error = %e, "failure not recorded; a new owner may count one less");
                    }
                    let delay = after.unwrap_or_else(|| def.backoff_after(attempt));
                    debug!(%reason, ?delay, attempt, "retrying here, ahead of the key's next messages");
                    if !self.pause_until(delivery, Instant::now() + delay).await {
                        return;
                    }
                    attempt += 1;
                }
                Outcome::Wait { reason, after } => {
                    debug!(%reason, ?after, attempt, "waiting; not an attempt");
                    if !self.pause_until(delivery, Instant::now() + after).await {
                        return;
                    }
                }
            }
        }
    }

    /// The handler, with in-progress acks while it runs and a panic caught as a failed attempt.
    async fn run_handler(&self, delivery: &Delivery, incoming: Incoming<M>) -> Outcome {
        let every = (self.consumer.ack_wait / 3).max(Duration::from_millis(10));
        let mut heartbeat = tokio::time::interval_at(Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let work = AssertUnwindSafe((self.shared.handler)(incoming)).catch_unwind();
        tokio::pin!(work);
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = heartbeat.tick() => delivery.progress().await,
            }
        };
        result.unwrap_or_else(panicked)
    }

    /// Keeps a message in hand until `until`; `false` when the partition was lost or handed
    /// back meanwhile (the message is left for the next owner).
    async fn pause_until(&self, delivery: &Delivery, until: Instant) -> bool {
        let every = (self.consumer.ack_wait / 3).max(Duration::from_millis(10));
        loop {
            let now = Instant::now();
            if now >= until {
                return self.running();
            }
            tokio::select! {
                () = tokio::time::sleep_until(until.min(now + every)) => delivery.progress().await,
                () = self.lost.cancelled() => return false,
                () = self.stop.cancelled() => return false,
            }
        }
    }

    async fn forget_failures(&self, fail_key: &impl Fn() -> String, failures: u32) {
        if failures > 0 {
            let _ = self.shared.attempts.delete(&fail_key(), None).await;
        }
    }
}
