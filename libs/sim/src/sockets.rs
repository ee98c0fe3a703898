//! Every open socket of every protocol surface, in one registry: what `GET /sim/sockets` lists
//! and what socket faults, planned closes and session evictions reach.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::core::EventSink;
use crate::core::market::{MarketSink, MarketUpdate};
use crate::core::model::{Change, Id};

/// Which socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SocketKind {
    /// Trading and user data.
    User,
    /// Market data.
    Md,
    /// ProjectX user hub (`/hubs/user`).
    #[serde(rename = "projectxUser")]
    ProjectXUser,
    /// ProjectX market hub (`/hubs/market`).
    #[serde(rename = "projectxMarket")]
    ProjectXMarket,
}

/// What the admin API shows of a socket.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SocketInfo {
    /// Socket id.
    pub id: u64,
    /// Kind.
    pub kind: SocketKind,
    /// Peer address.
    pub ip: IpAddr,
    /// User, once authorized.
    pub user_id: Option<Id>,
    /// Session, once authorized.
    pub session_id: Option<Id>,
    /// Accounts its sync request covers.
    pub accounts: Vec<Id>,
    /// Connection time (µs).
    pub connected_us: i64,
}

/// Instructions to a socket task.
#[derive(Debug, Clone)]
pub enum Control {
    /// Planned close: an optional `shutdown` event, then `c[code,"reason"]`, then close.
    Close {
        /// Close code of the `c` frame.
        code: u16,
        /// Reason.
        reason: String,
        /// `reasonCode` of a `shutdown` event sent first.
        shutdown: Option<String>,
    },
    /// Drop the connection without any frame.
    Drop,
}

pub(crate) struct Entry {
    pub(crate) info: Arc<Mutex<SocketInfo>>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
}

/// Every open socket.
#[derive(Default)]
pub struct Sockets {
    pub(crate) map: DashMap<u64, Entry>,
    pub(crate) next: AtomicU64,
}

impl std::fmt::Debug for Sockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sockets")
            .field("open", &self.map.len())
            .finish()
    }
}

impl Sockets {
    /// Every socket.
    #[must_use]
    pub fn list(&self) -> Vec<SocketInfo> {
        let mut v: Vec<SocketInfo> = self.map.iter().map(|e| e.info.lock().clone()).collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// Sends `control` to the sockets of `user` / serving `account` (both optional); returns
    /// how many.
    pub fn apply(&self, user: Option<Id>, account: Option<Id>, control: &Control) -> usize {
        let mut n = 0;
        for e in &self.map {
            let info = e.info.lock();
            let user_ok = user.is_none_or(|u| info.user_id == Some(u));
            let account_ok = account.is_none_or(|a| info.accounts.contains(&a));
            if user_ok && account_ok {
                let _ = e.control.send(control.clone());
                n += 1;
            }
        }
        n
    }

    /// Closes the sockets of a login session (evicted by a newer login).
    pub fn close_session(&self, session_id: Id, reason_code: &str, reason: &str) {
        for e in &self.map {
            if e.info.lock().session_id == Some(session_id) {
                let _ = e.control.send(Control::Close {
                    code: 3000,
                    reason: reason.to_string(),
                    shutdown: Some(reason_code.to_string()),
                });
            }
        }
    }

    /// Registers a socket served elsewhere (the ProjectX hubs), so that socket faults, planned
    /// closes and `GET /sim/sockets` reach it; returns its id, its shared info and the control
    /// channel it must obey.
    pub(crate) fn register(
        &self,
        info: SocketInfo,
    ) -> (
        u64,
        Arc<Mutex<SocketInfo>>,
        mpsc::UnboundedReceiver<Control>,
    ) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let info = Arc::new(Mutex::new(SocketInfo { id, ..info }));
        let (tx, rx) = mpsc::unbounded_channel();
        self.map.insert(
            id,
            Entry {
                info: info.clone(),
                control: tx,
            },
        );
        (id, info, rx)
    }

    /// Forgets a socket registered with [`Sockets::register`].
    pub(crate) fn unregister(&self, id: u64) {
        self.map.remove(&id);
    }

    /// Number of open sockets.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no socket is open.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// An account's changes queued for one socket, in a bounded queue the exchange fills with
/// `try_send`: a client too slow to drain it is closed with `overflow_code` (it resynchronizes
/// on reconnect), so it can never hold up matching.
pub(crate) struct AccountSink {
    pub(crate) id: u64,
    pub(crate) tx: mpsc::Sender<(Id, Arc<[Change]>)>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    /// The close code of the overflow close (each protocol has its own).
    pub(crate) overflow_code: u16,
}

impl EventSink for AccountSink {
    fn offer(&self, account_id: Id, batch: &Arc<[Change]>) -> bool {
        match self.tx.try_send((account_id, batch.clone())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                let _ = self.control.send(Control::Close {
                    code: self.overflow_code,
                    reason: "Event queue overflow: the client does not read fast enough".into(),
                    shutdown: None,
                });
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
    fn sink_id(&self) -> u64 {
        self.id
    }
}

/// Market updates queued for one socket: a full queue skips an update (the next supersedes it).
pub(crate) struct QuoteSink {
    pub(crate) id: u64,
    pub(crate) tx: mpsc::Sender<Arc<MarketUpdate>>,
}

impl MarketSink for QuoteSink {
    fn offer(&self, update: &Arc<MarketUpdate>) -> bool {
        match self.tx.try_send(update.clone()) {
            // A full queue skips this update: the next one supersedes it.
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
    fn sink_id(&self) -> u64 {
        self.id
    }
}
