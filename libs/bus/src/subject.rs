//! Subjects and names: the one place that spells them.
//!
//! Every subject is `<root>.<kind>.<tokens…>`. The root is `jt` in production; a
//! [`Namespace::isolated`] namespace gives tests (or a second tenant on one server) their own
//! root, stream names and KV buckets so they never see each other's messages.
//!
//! Ids from the outside world (recorder names, account ids, entity kinds) go into subjects only
//! through [`SubjectToken`], which escapes every byte that is not `[A-Za-z0-9_-]` as `=XX`. The
//! escaped form is a valid NATS subject token *and* a valid KV key segment, and it is reversible.

use std::fmt;

/// The subject root of the production namespace.
pub const PRODUCTION_ROOT: &str = "jt";

/// Errors building subjects, tokens and names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// An id meant for a subject token was empty.
    #[error("an empty id cannot be a subject token")]
    EmptyToken,
    /// An id meant for a subject token was longer than [`SubjectToken::MAX_RAW_LEN`] bytes.
    #[error("id of {len} bytes is longer than the {max} bytes a subject token may carry")]
    TokenTooLong {
        /// The id's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A token read back from a subject is not in the escaped form this module writes.
    #[error("`{token}` is not an escaped subject token: {why}")]
    NotEscaped {
        /// The offending token.
        token: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A namespace tag is not 1–16 characters of `[a-z0-9]`.
    #[error("namespace tag `{0}` must be 1-16 characters of [a-z0-9]")]
    BadNamespaceTag(String),
}

/// Where a deployment's subjects, streams and buckets live.
///
/// Production uses [`Namespace::production`]: root `jt`, stream names as documented
/// (`SIGNALS`, `ORDERS`, …), buckets `jt_locks`, …. An isolated namespace prefixes all three, so
/// tests sharing one server can run in parallel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    root: String,
    name_prefix: String,
    bucket_prefix: String,
}

impl Namespace {
    /// The production namespace: root `jt`, unprefixed stream names.
    #[must_use]
    pub fn production() -> Self {
        Self {
            root: PRODUCTION_ROOT.to_owned(),
            name_prefix: String::new(),
            bucket_prefix: String::new(),
        }
    }

    /// A namespace of its own: root `jt_<tag>`, streams `<TAG>_<NAME>`, buckets `<tag>_<name>`.
    ///
    /// # Errors
    /// [`SubjectError::BadNamespaceTag`] unless `tag` is 1–16 characters of `[a-z0-9]`.
    pub fn isolated(tag: &str) -> Result<Self, SubjectError> {
        let valid = !tag.is_empty()
            && tag.len() <= 16
            && tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(SubjectError::BadNamespaceTag(tag.to_owned()));
        }
        Ok(Self {
            root: format!("{PRODUCTION_ROOT}_{tag}"),
            name_prefix: format!("{}_", tag.to_ascii_uppercase()),
            bucket_prefix: format!("{tag}_"),
        })
    }

    /// A fresh isolated namespace with a random tag (for tests and benchmarks).
    #[must_use]
    pub fn unique() -> Self {
        let tag: String = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .chars()
            .take(12)
            .collect();
        // A UUID's hex digits are always a valid tag.
        Self {
            root: format!("{PRODUCTION_ROOT}_t{tag}"),
            name_prefix: format!("T{}_", tag.to_ascii_uppercase()),
            bucket_prefix: format!("t{tag}_"),
        }
    }

    /// The subject root (`jt` in production).
    #[must_use]
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The stream (or consumer-visible) name for a base name such as `ORDERS`.
    #[must_use]
    pub fn stream_name(&self, base: &str) -> String {
        format!("{}{base}", self.name_prefix)
    }

    /// The KV bucket name for a base name such as `jt_locks`.
    #[must_use]
    pub fn bucket_name(&self, base: &str) -> String {
        format!("{}{base}", self.bucket_prefix)
    }

    /// The subject builders of this namespace.
    #[must_use]
    pub fn subjects(&self) -> Subjects {
        Subjects {
            root: self.root.clone(),
        }
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self::production()
    }
}

/// An id escaped for use as one subject token (and as a KV key segment).
///
/// `[A-Za-z0-9_-]` pass through; every other byte of the UTF-8 form becomes `=XX` (upper-case
/// hex), `=` included, so `.`, `*`, `>`, spaces and non-ASCII can never change a subject's shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectToken(String);

impl SubjectToken {
    /// The longest id (in bytes, before escaping) a token may carry.
    pub const MAX_RAW_LEN: usize = 128;

    /// Escapes `raw` into a token.
    ///
    /// # Errors
    /// [`SubjectError::EmptyToken`] for an empty id, [`SubjectError::TokenTooLong`] above
    /// [`Self::MAX_RAW_LEN`] bytes.
    pub fn escape(raw: &str) -> Result<Self, SubjectError> {
        if raw.is_empty() {
            return Err(SubjectError::EmptyToken);
        }
        if raw.len() > Self::MAX_RAW_LEN {
            return Err(SubjectError::TokenTooLong {
                len: raw.len(),
                max: Self::MAX_RAW_LEN,
            });
        }
        let mut out = String::with_capacity(raw.len());
        for b in raw.bytes() {
            if passes_through(b) {
                out.push(char::from(b));
            } else {
                out.push('=');
                out.push(hex_digit(b >> 4));
                out.push(hex_digit(b & 0x0f));
            }
        }
        Ok(Self(out))
    }

    /// Validates a token read back from a subject (the escaped form).
    ///
    /// # Errors
    /// [`SubjectError::NotEscaped`] if `token` could not have come from [`Self::escape`].
    pub fn from_escaped(token: &str) -> Result<Self, SubjectError> {
        decode(token)?;
        Ok(Self(token.to_owned()))
    }

    /// The escaped form, as it appears in subjects and keys.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The original id.
    #[must_use]
    pub fn unescape(&self) -> String {
        // Built by `escape` or validated by `from_escaped`: decoding cannot fail.
        decode(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for SubjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn passes_through(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(nibble & 0x0f)])
}

fn decode(token: &str) -> Result<String, SubjectError> {
    let bad = |why| SubjectError::NotEscaped {
        token: token.to_owned(),
        why,
    };
    if token.is_empty() {
        return Err(bad("empty"));
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if passes_through(b) {
            out.push(b);
            i += 1;
        } else if b == b'=' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or_else(|| bad("truncated =XX escape"))?;
            let value = std::str::from_utf8(hex)
                .ok()
                .filter(|h| {
                    h.bytes()
                        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
                })
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("escape is not two upper-case hex digits"))?;
            if passes_through(value) {
                return Err(bad("escaped a byte that passes through"));
            }
            out.push(value);
            i += 3;
        } else {
            return Err(bad("contains a byte that must be escaped"));
        }
    }
    String::from_utf8(out).map_err(|_| bad("escapes do not form UTF-8"))
}

/// How many partitions ORDERS is split into. Fixed: an account's partition is part of its
/// subjects, so changing it moves accounts between partitions and needs ORDERS drained first
/// (`docs/bus.md`). 32 lets up to 32 executor replicas share the work.
pub const ORDER_PARTITIONS: u16 = 32;

/// The partition (0 ≤ p < [`ORDER_PARTITIONS`]) of an escaped account token: FNV-1a over its
/// bytes, stable across builds, platforms and processes (unlike `std`'s hasher).
#[must_use]
pub fn order_partition(escaped_account: &str) -> u16 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in escaped_account.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    u16::try_from(hash % u32::from(ORDER_PARTITIONS)).unwrap_or(0)
}

/// The subject token of partition `p`: `p00` … `p31`.
#[must_use]
pub fn partition_token(partition: u16) -> String {
    format!("p{partition:02}")
}

/// Subject builders for one namespace. Raw ids are escaped here, never by callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    root: String,
}

impl Subjects {
    fn join(&self, kind: &str, tokens: &[&SubjectToken]) -> String {
        let mut s = format!("{}.{kind}", self.root);
        for t in tokens {
            s.push('.');
            s.push_str(t.as_str());
        }
        s
    }

    /// `jt.signals.<recorder>`: a TradingView alert accepted by ingest.
    ///
    /// # Errors
    /// When `recorder` is empty or too long (see [`SubjectToken::escape`]).
    pub fn signal(&self, recorder: &str) -> Result<String, SubjectError> {
        Ok(self.join("signals", &[&SubjectToken::escape(recorder)?]))
    }

    /// `jt.orders.<partition>.<account>`: an order intent for one broker account, on the
    /// account's partition ([`order_partition`]): each partition is executed by one replica
    /// at a time (`docs/bus.md`, "Partition-owned execution").
    ///
    /// # Errors
    /// When `account` is empty or too long.
    pub fn order(&self, account: &str) -> Result<String, SubjectError> {
        let account = SubjectToken::escape(account)?;
        let partition = SubjectToken(partition_token(order_partition(account.as_str())));
        Ok(self.join("orders", &[&partition, &account]))
    }

    /// `jt.orders.<partition>.>`: every order intent of one partition (its consumer's filter).
    #[must_use]
    pub fn order_partition_filter(&self, partition: u16) -> String {
        format!("{}.orders.{}.>", self.root, partition_token(partition))
    }

    /// `jt.broker.<account>.<entity>`: an event from a broker's socket (order, fill, position…).
    ///
    /// # Errors
    /// When either id is empty or too long.
    pub fn broker_event(&self, account: &str, entity: &str) -> Result<String, SubjectError> {
        let account = SubjectToken::escape(account)?;
        let entity = SubjectToken::escape(entity)?;
        Ok(self.join("broker", &[&account, &entity]))
    }

    /// `jt.executions.<account>`: what the executor did for an account.
    ///
    /// # Errors
    /// When `account` is empty or too long.
    pub fn execution(&self, account: &str) -> Result<String, SubjectError> {
        Ok(self.join("executions", &[&SubjectToken::escape(account)?]))
    }

    /// `jt.cmd.<kind>.<account>`: an operational command (flatten, cancel all…) for an account.
    ///
    /// # Errors
    /// When either id is empty or too long.
    pub fn command(&self, kind: &str, account: &str) -> Result<String, SubjectError> {
        let kind = SubjectToken::escape(kind)?;
        let account = SubjectToken::escape(account)?;
        Ok(self.join("cmd", &[&kind, &account]))
    }

    /// `jt.quotes.<contract>`: the newest quote of a contract (by the broker's contract name,
    /// `MNQZ6`), on a core subject (not stored; see [`crate::core`]).
    ///
    /// # Errors
    /// When `contract` is empty or too long.
    pub fn quote(&self, contract: &str) -> Result<String, SubjectError> {
        Ok(self.join("quotes", &[&SubjectToken::escape(contract)?]))
    }

    /// `jt.dlq.<stream>.<consumer>`: where a consumer's dead letters go. Stream and consumer
    /// names are ours (valid tokens already).
    #[must_use]
    pub fn dead_letter(&self, stream: &str, consumer: &str) -> String {
        format!("{}.dlq.{stream}.{consumer}", self.root)
    }

    /// `jt.<kind>.>`: every subject of one kind (a stream's or a consumer's filter).
    #[must_use]
    pub fn all(&self, kind: &str) -> String {
        format!("{}.{kind}.>", self.root)
    }

    /// `jt.<kind>.*`: one-token subjects of a kind.
    #[must_use]
    pub fn one_level(&self, kind: &str) -> String {
        format!("{}.{kind}.*", self.root)
    }

    /// The escaped token at `index` of `subject` (0 is the root), e.g. the account of an order
    /// subject is token 2.
    #[must_use]
    pub fn token(subject: &str, index: usize) -> Option<&str> {
        subject.split('.').nth(index)
    }
}

/// Whether `subject` matches a NATS `filter` (`*` one token, `>` one or more trailing tokens).
#[must_use]
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case("acct-42", "acct-42")]
    #[case("a.b", "a=2Eb")]
    #[case("*", "=2A")]
    #[case(">", "=3E")]
    #[case("x y", "x=20y")]
    #[case("a=b", "a=3Db")]
    #[case("é", "=C3=A9")]
    #[case("under_score", "under_score")]
    fn escapes_into_one_token(#[case] raw: &str, #[case] token: &str) {
        let t = SubjectToken::escape(raw).unwrap();
        assert_eq!(t.as_str(), token);
        assert_eq!(t.unescape(), raw);
    }

    #[test]
    fn refuses_empty_and_overlong_ids() {
        assert_eq!(SubjectToken::escape(""), Err(SubjectError::EmptyToken));
        let long = "x".repeat(SubjectToken::MAX_RAW_LEN + 1);
        assert!(matches!(
            SubjectToken::escape(&long),
            Err(SubjectError::TokenTooLong { .. })
        ));
    }

    #[rstest]
    #[case("a.b")]
    #[case("=2")]
    #[case("=zz")]
    #[case("=41")] // 'A' passes through, so its escape is not canonical
    #[case("=2e")] // lower-case hex is not what escape writes
    #[case("")]
    fn rejects_tokens_escape_never_writes(#[case] token: &str) {
        assert!(SubjectToken::from_escaped(token).is_err(), "{token}");
    }

    #[test]
    fn builds_documented_subjects() {
        let s = Namespace::production().subjects();
        assert_eq!(s.signal("rec 1").unwrap(), "jt.signals.rec=201");
        let p = partition_token(order_partition("A=2E1"));
        assert_eq!(s.order("A.1").unwrap(), format!("jt.orders.{p}.A=2E1"));
        assert_eq!(s.broker_event("7", "fill").unwrap(), "jt.broker.7.fill");
        assert_eq!(s.execution("7").unwrap(), "jt.executions.7");
        assert_eq!(s.command("flatten", "7").unwrap(), "jt.cmd.flatten.7");
        assert_eq!(s.dead_letter("ORDERS", "execute"), "jt.dlq.ORDERS.execute");
        assert_eq!(Subjects::token("jt.orders.A=2E1", 2), Some("A=2E1"));
    }

    #[test]
    fn partitions_are_stable_spread_and_in_range() {
        // Pinned values: a changed hash would move live accounts between partitions.
        assert_eq!(order_partition("A=2E1"), order_partition("A=2E1"));
        assert_eq!(partition_token(7), "p07");
        let mut seen = vec![0u32; usize::from(ORDER_PARTITIONS)];
        for n in 0..3200 {
            let p = order_partition(&n.to_string());
            assert!(p < ORDER_PARTITIONS);
            seen[usize::from(p)] += 1;
        }
        // Roughly even: every partition gets between half and twice its share of 100.
        assert!(seen.iter().all(|&c| (50..200).contains(&c)), "{seen:?}");
        assert_eq!(
            Namespace::production().subjects().order_partition_filter(3),
            "jt.orders.p03.>"
        );
    }

    #[test]
    fn isolated_namespaces_prefix_everything() {
        let ns = Namespace::isolated("ab12").unwrap();
        let p = partition_token(order_partition("1"));
        assert_eq!(
            ns.subjects().order("1").unwrap(),
            format!("jt_ab12.orders.{p}.1")
        );
        assert_eq!(ns.stream_name("ORDERS"), "AB12_ORDERS");
        assert_eq!(ns.bucket_name("jt_locks"), "ab12_jt_locks");
        assert!(Namespace::isolated("Bad").is_err());
        assert!(Namespace::isolated("").is_err());
        assert_ne!(Namespace::unique(), Namespace::unique());
    }

    #[rstest]
    #[case("jt.orders.>", "jt.orders.1", true)]
    #[case("jt.orders.>", "jt.orders.1.x", true)]
    #[case("jt.orders.>", "jt.orders", false)]
    #[case("jt.orders.*", "jt.orders.1", true)]
    #[case("jt.orders.*", "jt.orders.1.x", false)]
    #[case("jt.*.1", "jt.orders.1", true)]
    #[case("jt.orders.1", "jt.orders.2", false)]
    #[case("jt.orders.1", "jt.orders.1", true)]
    fn matches_filters_like_nats(#[case] filter: &str, #[case] subject: &str, #[case] want: bool) {
        assert_eq!(subject_matches(filter, subject), want);
    }

    proptest! {
        #[test]
        fn any_id_round_trips_through_one_safe_token(raw in "\\PC{1,32}") {
            let t = SubjectToken::escape(&raw).unwrap();
            prop_assert!(!t.as_str().is_empty());
            prop_assert!(t.as_str().bytes().all(|b| passes_through(b) || b == b'='));
            prop_assert_eq!(t.unescape(), raw.clone());
            prop_assert_eq!(SubjectToken::from_escaped(t.as_str()).unwrap(), t);
        }

        #[test]
        fn distinct_ids_never_share_a_token(a in "\\PC{1,16}", b in "\\PC{1,16}") {
            prop_assume!(a != b);
            prop_assert_ne!(SubjectToken::escape(&a).unwrap(), SubjectToken::escape(&b).unwrap());
        }
    }
}
