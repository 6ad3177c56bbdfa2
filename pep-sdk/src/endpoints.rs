//! The PDP endpoints a [`PepClient`](crate::PepClient) calls, one channel
//! each, and which of them are set aside.
//!
//! Decisions go round robin over the endpoints in service. An endpoint
//! whose call got no answer (unreachable, or the deadline passed) is set
//! aside (once, however many calls were in flight on it): it takes no
//! decisions until a `Status` probe, sent in the background
//! [`FIRST_PROBE_AFTER`] later, answers; each probe that gets no answer
//! either doubles the wait before the next, up to [`LAST_PROBE_AFTER`]. A frozen PDP (a stopped
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
    /// service, round robin (the turn of one set aside passes on, so the
    /// others share its calls evenly); probes of set-aside endpoints that
    /// are due are started on the way (so this must run inside a Tokio
    /// runtime).
    pub(crate) fn pick(self: &Arc<Self>) -> (usize, Client) {
        let n = self.slots.len();
        if n == 1 {
            return (0, self.slots[0].client.clone());
        }
        let mut fallback: Option<(usize, u32)> = None;
        for _ in 0..n {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
            let misses = self.slots[i].misses.load(Ordering::Acquire);
            if misses == 0 {
                return (i, self.slots[i].client.clone());
            }
            self.probe_if_due(i);
            if fallback.is_none_or(|(_, fewest)| misses < fewest) {
                fallback = Some((i, misses));
            }
        }
        let i = fallback.map_or(0, |(i, _)| i);
        (i, self.slots[i].client.clone())
    }

    /// Endpoint `i` answered a call: back in service.
    pub(crate) fn answered(&self, i: usize) {
        if let Some(slot) = self.slots.get(i) {
            slot.misses.store(0, Ordering::Release);
        }
    }

    /// A call to endpoint `i` got no answer: set aside, its first probe
    /// due after [`FIRST_PROBE_AFTER`]. One already set aside stays as it
    /// is: the calls that were in flight when it stopped answering all miss,
    /// and count as the one miss they are; only its probes count further.
    pub(crate) fn missed(&self, i: usize) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        if slot
            .misses
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.probe_later(slot, 1);
        }
    }

    /// A probe of endpoint `i` got no answer: its next one is due after
    /// twice the last wait, up to [`LAST_PROBE_AFTER`].
    fn probe_missed(&self, i: usize) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        let misses = slot.misses.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        self.probe_later(slot, misses);
    }

    /// Sets when `slot`'s next probe is due, after `misses` misses.
    fn probe_later(&self, slot: &Slot, misses: u32) {
        let wait = FIRST_PROBE_AFTER
            .saturating_mul(1 << misses.saturating_sub(1).min(16))
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
                _ => this.probe_missed(i),
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
    /// takes none until it answers again, and its turns pass on evenly;
    /// with all set aside, the one with the fewest misses.
    #[tokio::test]
    async fn a_set_aside_endpoint_takes_no_calls_until_it_answers() {
        let e = endpoints(3);
        let picked: Vec<usize> = (0..6).map(|_| e.pick().0).collect();
        assert_eq!(picked, [0, 1, 2, 0, 1, 2]);
        e.missed(1);
        let picked: Vec<usize> = (0..60).map(|_| e.pick().0).collect();
        assert!(!picked.contains(&1), "{picked:?}");
        let zeros = picked.iter().filter(|&&i| i == 0).count();
        assert_eq!(zeros, 30, "evenly over the others: {picked:?}");
        e.answered(1);
        assert!((0..3).any(|_| e.pick().0 == 1));
        e.missed(0);
        e.probe_missed(0);
        e.missed(1);
        e.missed(2);
        e.probe_missed(2);
        assert!((0..6).all(|_| e.pick().0 == 1));
    }

    /// Calls that miss while an endpoint is set aside count once; each
    /// missed probe doubles the wait before the next, up to the last.
    #[tokio::test]
    async fn the_wait_before_a_probe_doubles_with_missed_probes_only() {
        let e = endpoints(2);
        let wait_s = |e: &Endpoints, before: u64| {
            (e.slots[0].probe_at_ms.load(Ordering::Acquire) - before + 500) / 1000
        };
        let before = e.now_ms();
        for _ in 0..30 {
            e.missed(0);
        }
        assert_eq!(e.slots[0].misses.load(Ordering::Acquire), 1);
        assert_eq!(wait_s(&e, before), 1);
        let mut secs = Vec::new();
        for _ in 0..7 {
            let before = e.now_ms();
            e.probe_missed(0);
            secs.push(wait_s(&e, before));
        }
        assert_eq!(secs, [2, 4, 8, 16, 30, 30, 30]);
    }
}
