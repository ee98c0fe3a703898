//! Publish + ack latency (p50, p99, max) and throughput for 300-byte envelopes, 1 and 64 in
//! flight, on the embedded bus and on JetStream at `NATS_URL` (`make bench` starts a pinned
//! nats-server 2.15.1 and sets it). Results go to `docs/benchmarks.md` by hand, with the machine.
//!
//! `cargo bench -p jt-bus --bench publish` (release profile). Each case publishes distinct
//! message ids to the SIGNALS stream of a fresh namespace (file storage on JetStream), after a
//! warm-up, and awaits every acknowledgement.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use jt_bus::{
    Bus, Definitions, Envelope, JetStreamOptions, Message, MessageId, Namespace, SubjectError,
    Subjects,
};
use serde::{Deserialize, Serialize};

/// The payload: padded so the JSON body is exactly 300 bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BenchSignal {
    recorder: String,
    seq: u64,
    pad: String,
}

impl Message for BenchSignal {
    const TYPE: &'static str = "bench-signal";
    const SCHEMA_VERSION: u32 = 1;
    fn subject(&self, subjects: &Subjects) -> Result<String, SubjectError> {
        subjects.signal(&self.recorder)
    }
}

const BODY_BYTES: usize = 300;

fn envelope(run: &str, seq: u64) -> Envelope<BenchSignal> {
    let mut payload = BenchSignal {
        recorder: "bench".into(),
        seq,
        pad: String::new(),
    };
    let bare = serde_json::to_vec(&payload).map(|v| v.len()).unwrap_or(0);
    payload.pad = "x".repeat(BODY_BYTES.saturating_sub(bare));
    let id = MessageId::new(format!("bench:{run}:{seq}")).unwrap_or_else(|e| panic!("{e}"));
    Envelope::new(id, payload)
}

struct Case {
    backend: &'static str,
    in_flight: usize,
    messages: u64,
}

struct Outcome {
    histogram: Histogram<u64>,
    elapsed: Duration,
}

async fn run_case(bus: &Bus, case: &Case) -> Outcome {
    let defs = Definitions::new(bus.namespace());
    bus.provision(&defs.topology())
        .await
        .unwrap_or_else(|e| panic!("provision: {e}"));
    let run = uuid_like();
    // Warm-up: connections, stream files, allocator.
    for seq in 0..500 {
        bus.publish(&envelope(&format!("{run}w"), seq))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let per_task = case.messages / case.in_flight as u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..case.in_flight as u64 {
        let bus = bus.clone();
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .unwrap_or_else(|e| panic!("{e}"));
            for i in 0..per_task {
                let env = envelope(&run, t * per_task + i);
                let sent = Instant::now();
                let receipt = bus.publish(&env).await.unwrap_or_else(|e| panic!("{e}"));
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                assert!(!receipt.duplicate);
                h.record(micros.max(1)).unwrap_or_else(|e| panic!("{e}"));
            }
            h
        }));
    }
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|e| panic!("{e}"));
    for t in tasks {
        let h = t.await.unwrap_or_else(|e| panic!("{e}"));
        histogram.add(&h).unwrap_or_else(|e| panic!("{e}"));
    }
    let elapsed = started.elapsed();
    bus.teardown(&defs.topology())
        .await
        .unwrap_or_else(|e| panic!("teardown: {e}"));
    Outcome { histogram, elapsed }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}")
}

#[tokio::main]
async fn main() {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| {
        panic!(
            "NATS_URL is not set: run `make bench` (it starts nats-server 2.15.1) or set NATS_URL"
        )
    });
    let sample = envelope("sample", 0)
        .encode(&Namespace::production().subjects())
        .unwrap_or_else(|e| panic!("{e}"));
    let header_bytes: usize = sample
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum();
    println!(
        "jt-bus publish benchmark: body {} bytes, headers ~{} bytes, {} worker threads",
        sample.payload.len(),
        header_bytes + 12,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let cases = [
        Case {
            backend: "embedded",
            in_flight: 1,
            messages: 20_000,
        },
        Case {
            backend: "embedded",
            in_flight: 64,
            messages: 200_000,
        },
        Case {
            backend: "jetstream",
            in_flight: 1,
            messages: 5_000,
        },
        Case {
            backend: "jetstream",
            in_flight: 64,
            messages: 50_000,
        },
    ];
    println!(
        "{:<10} {:>9} {:>9} {:>10} {:>10} {:>10} {:>12}",
        "backend", "in_flight", "messages", "p50_us", "p99_us", "max_us", "msgs_per_s"
    );
    for case in &cases {
        let bus = match case.backend {
            "embedded" => Bus::embedded(Namespace::unique()),
            _ => Bus::jetstream(&url, Namespace::unique(), JetStreamOptions::default())
                .await
                .unwrap_or_else(|e| panic!("NATS_URL={url}: {e}")),
        };
        let out = run_case(&bus, case).await;
        let count = out.histogram.len();
        println!(
            "{:<10} {:>9} {:>9} {:>10} {:>10} {:>10} {:>12.0}",
            case.backend,
            case.in_flight,
            count,
            out.histogram.value_at_quantile(0.50),
            out.histogram.value_at_quantile(0.99),
            out.histogram.max(),
            count as f64 / out.elapsed.as_secs_f64(),
        );
    }
}
