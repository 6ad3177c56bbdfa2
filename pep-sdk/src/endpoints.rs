//! The PDP endpoints a [`PepClient`](crate::PepClient) calls, one channel
//! each, and which of them are set aside.
//!
//! Decisions go round robin over the endpoints in service. An endpoint
//! whose call got no answer (unreachable, or the deadline passed) is set
//! aside: it takes no decisions until a `Status` probe, sent in the
//! background [`FIRST_PROBE_AFTER`] later, then after twice as long each
//! time up to [`LAST_PROBE_AFTER`], answers. A frozen PDP (a stopped
//! process, a hung host) is what this is for: the kernel still completes
//! the TCP handshake of a new connection, so keepalive redials land on it
//! again, and every call sent there would spend the whole deadline and
//! fail closed. With every endpoint set aside, calls go to the one with
//! the fewest misses, as there is nothing better to try.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use authz_proto::pb;
use authz_proto::pb::policy_decision_point_client::PolicyDecisionPointClient;
use tonic::transport::Channel;

/// How long an endpoint that missed a call is left alone before the first
/// probe.
pub const FIRST_PROBE_AFTER: Duration = Duration::from_secs(1);
/// The longest wait between two probes of an endpoint that keeps missing.
pub const LAST_PROBE_AFTER: Duration = Duration::from_secs(30);

/// A client of one PDP endpoint.
pub(crate) type Client = PolicyDecisionPointClient<Channel>;

/// The endpoints of a client and their state.
pub(crate) struct Endpoints {
    slots: Vec<Slot>,
    /// The round robin's next start.
    next: AtomicUsize,
    /// What the probes' times count from.
    epoch: Instant,
    /// A probe's deadline (the client's decision deadline).
    probe_deadline: Duration,
}

struct Slot {
    client: Client,
    /// Calls (or probes) in a row without an answer; 0: in service.
    misses: AtomicU32,
    /// When (ms after `epoch`) the next probe is due.
    probe_at_ms: AtomicU64,
    /// A probe is under way.
    probing: AtomicBool,
}

impl Endpoints {
    /// One slot per client, all in service.
    pub(crate) fn new(clients: Vec<Client>, probe_deadline: Duration) -> Self {
        Self {
            slots: clients
                .into_iter()
                .map(|client| Slot {
                    client,
                    misses: AtomicU32::new(0),
                    probe_at_ms: AtomicU64::new(0),
                    probing: AtomicBool::new(false),
                })
                .collect(),
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
            probe_deadline,
        }
    }

    /// The endpoint the next call goes to, and a client of it: the next in
    /// service; probes of set-aside endpoints that are due are started on
    /// the way (so this must run inside a Tokio runtime).
    pub(crate) fn pick(self: &Arc<Self>) -> (usize, Client) {
        let n = self.slots.len();
        if n == 1 {
            return (0, self.slots[0].client.clone());
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut fallback: Option<(usize, u32)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let misses = self.slots[i].misses.load(Ordering::Acquire);
            if misses == 0 {
                return (i, self.slots[i].client.clone());
            }
            self.probe_if_due(i);
            if fallback.is_none_or(|(_, fewest)| misses < fewest) {
                fallback = Some((i, misses));
            }
        }
        let i = fallback.map_or(start, |(i, _)| i);
        (i, self.slots[i].client.clone())
    }

    /// Endpoint `i` answered a call: back in service.
    pub(crate) fn answered(&self, i: usize) {
        if let Some(slot) = self.slots.get(i) {
            slot.misses.store(0, Ordering::Release);
        }
    }

    /// Endpoint `i` gave no answer: set aside, its next probe due after
    /// twice the last wait (the first after [`FIRST_PROBE_AFTER`]).
    pub(crate) fn missed(&self, i: usize) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        let misses = slot.misses.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        let wait = FIRST_PROBE_AFTER
            .saturating_mul(1 << (misses - 1).min(16))
            .min(LAST_PROBE_AFTER);
        let due = self.now_ms().saturating_add(wait.as_millis() as u64);
        slot.probe_at_ms.store(due, Ordering::Release);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Starts a `Status` probe of set-aside endpoint `i` when one is due
    /// and none is under way.
    fn probe_if_due(self: &Arc<Self>, i: usize) {
        let slot = &self.slots[i];
        if self.now_ms() < slot.probe_at_ms.load(Ordering::Acquire)
            || slot.probing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let this = self.clone();
        let mut client = slot.client.clone();
        tokio::spawn(async move {
            let mut call = tonic::Request::new(pb::StatusRequest {});
            call.set_timeout(this.probe_deadline);
            match tokio::time::timeout(this.probe_deadline, client.status(call)).await {
                Ok(Ok(_)) => this.answered(i),
                _ => this.missed(i),
            }
            this.slots[i].probing.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Arc<Endpoints> {
        let clients = (0..n)
            .map(|i| {
                let url = format!("http://127.0.0.1:{}", 9 + i);
                Client::new(Channel::from_shared(url).expect("url").connect_lazy())
            })
            .collect();
        Arc::new(Endpoints::new(clients, Duration::from_millis(50)))
    }

    /// In service, endpoints take calls in turn; one that missed a call
    /// takes none until it answers again; with all set aside, the one
    /// with the fewest misses.
    #[tokio::test]
    async fn a_set_aside_endpoint_takes_no_calls_until_it_answers() {
        let e = endpoints(3);
        let picked: Vec<usize> = (0..6).map(|_| e.pick().0).collect();
        assert_eq!(picked, [0, 1, 2, 0, 1, 2]);
        e.missed(1);
        let picked: Vec<usize> = (0..6).map(|_| e.pick().0).collect();
        assert!(!picked.contains(&1), "{picked:?}");
        assert!(picked.contains(&0) && picked.contains(&2), "{picked:?}");
        e.answered(1);
        assert!((0..3).any(|_| e.pick().0 == 1));
        e.missed(0);
        e.missed(0);
        e.missed(1);
        e.missed(2);
        e.missed(2);
        assert!((0..6).all(|_| e.pick().0 == 1));
    }

    /// The wait before a probe doubles with each miss, up to the last.
    #[tokio::test]
    async fn the_wait_before_a_probe_doubles_up_to_the_last() {
        let e = endpoints(2);
        let mut secs = Vec::new();
        for _ in 0..8 {
            let before = e.now_ms();
            e.missed(0);
            let wait = e.slots[0].probe_at_ms.load(Ordering::Acquire) - before;
            secs.push((wait + 500) / 1000);
        }
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
