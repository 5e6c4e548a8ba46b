//! The change feed: every [`Applied`] report of this node's state machine, in apply
//! order, to any number of subscribers (caches above the barrier, a log shipper).
//!
//! Events in: a report from the state machine after each applied entry or installed
//! snapshot, whichever path the entry came by (a client on this node, the leader, a
//! snapshot). Out: the same reports, to each subscriber.
//!
//! Invariant: publishing never waits. A subscriber that falls more than
//! [`CHANGE_FEED_CAPACITY`] reports behind is told it lagged (with how many reports it
//! missed) and must reload what it caches from a fresh view; it then goes on receiving
//! from the oldest report still held, which a reloaded cache may apply again harmlessly.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::applied_state::Applied;

/// How many reports the feed holds for its slowest subscriber. Enough for a few seconds
/// of writes at the rates the benches measure; a subscriber slower than that reloads.
pub const CHANGE_FEED_CAPACITY: usize = 4096;

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    Applied(Arc<Applied>),
    /// `missed` reports were dropped before this subscriber read them: reload.
    Lagged {
        missed: u64,
    },
}

impl FeedEvent {
    /// Whether this event may have changed any of `keys`: a report naming one, a
    /// snapshot install (anything may have changed), or missed reports.
    pub fn may_touch(&self, keys: &[&str]) -> bool {
        match self {
            FeedEvent::Lagged { .. } => true,
            FeedEvent::Applied(applied) => match &applied.changes {
                super::Changes::Everything => true,
                super::Changes::Keys(changes) => {
                    changes.iter().any(|change| keys.contains(&&*change.key))
                }
            },
        }
    }
}

/// The publishing side, owned by the state machine.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    sender: broadcast::Sender<Arc<Applied>>,
}

/// One subscriber's place in the feed.
#[derive(Debug)]
pub struct Subscription {
    receiver: broadcast::Receiver<Arc<Applied>>,
}

impl ChangeFeed {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// A subscription that receives every report published from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            receiver: self.sender.subscribe(),
        }
    }

    /// Hand `applied` to every subscriber; never waits, and having no subscriber is fine.
    pub fn publish(&self, applied: Applied) {
        // An error only means nobody is subscribed.
        let _ = self.sender.send(Arc::new(applied));
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new(CHANGE_FEED_CAPACITY)
    }
}

impl Subscription {
    /// The next event; `None` once the state machine is gone. Cancel-safe: dropping the
    /// future before it answers loses no event.
    pub async fn next(&mut self) -> Option<FeedEvent> {
        // A fault point: the subscriber sees events late (a busy cache task). The wait
        // comes before the receive, so a caller's `select!` that drops this future
        // mid-wait loses nothing.
        if crate::buggify::buggify("change-feed-delivery-lag") {
            tokio::time::sleep(crate::buggify::delay_ms(1_000)).await;
        }
        match self.receiver.recv().await {
            Ok(applied) => Some(FeedEvent::Applied(applied)),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(FeedEvent::Lagged { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is waiting.
    pub fn try_next(&mut self) -> Option<FeedEvent> {
        match self.receiver.try_recv() {
            Ok(applied) => Some(FeedEvent::Applied(applied)),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                Some(FeedEvent::Lagged { missed })
            }
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed) => {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::applied_state::Changes;

    fn report(log_index: u64) -> Applied {
        Applied {
            refused: None,
            log_index,
            wal_indexes: 1..1,
            changes: Changes::Keys(Vec::new()),
        }
    }

    fn log_index(event: Option<FeedEvent>) -> Option<u64> {
        match event? {
            FeedEvent::Applied(applied) => Some(applied.log_index),
            FeedEvent::Lagged { .. } => None,
        }
    }

    #[test]
    fn a_slow_subscriber_is_told_it_lagged_and_publishing_never_waits() {
        let feed = ChangeFeed::new(2);
        feed.publish(report(1)); // nobody subscribed yet: dropped, and no error
        let mut fast = feed.subscribe();
        let mut slow = feed.subscribe();

        feed.publish(report(2));
        assert_eq!(log_index(fast.try_next()), Some(2));
        feed.publish(report(3));
        assert_eq!(log_index(fast.try_next()), Some(3));
        feed.publish(report(4));
        assert_eq!(log_index(fast.try_next()), Some(4));
        assert_eq!(fast.try_next(), None);

        // The slow one missed report 2 (the feed holds two), is told so, then resumes.
        assert_eq!(slow.try_next(), Some(FeedEvent::Lagged { missed: 1 }));
        assert_eq!(log_index(slow.try_next()), Some(3));
        assert_eq!(log_index(slow.try_next()), Some(4));
        assert_eq!(slow.try_next(), None);
    }
}
