//! Replicas sharing mappings: N processes with one configuration divide M mappings between
//! them, at most ⌈M/N⌉ each.
//!
//! * **Membership.** Every replica writes a heartbeat row, once a [`ShareOptions::heartbeat`],
//!   in each database its mappings keep their state in (the `state_replicas` table, stamped by
//!   the database's clock). N is the number of replicas whose row in *any* of those databases
//!   is younger than [`ShareOptions::ttl`]: with one configuration every replica beats in
//!   every database, so each counts the same N; one cut off from a database is still counted
//!   through the others. A clean shutdown deletes the rows at once. SQLite keeps no
//!   heartbeats (each commit to its file would wake every engine on it): replicas of mappings
//!   on SQLite only count themselves alone, so the first runs every mapping and the others
//!   stand by.
//! * **Taking.** A replica tries a free mapping's lease only while it runs fewer than
//!   ⌈M/N⌉ ([`step`]); it counts a mapping from the moment it tries until its engine (and
//!   lease) is dropped, so its mappings' tasks never overshoot together.
//! * **Handing over.** One that runs more than ⌈M/N⌉ (a replica joined) hands one mapping
//!   over per heartbeat: the engine stops after the cycle in progress, the lease is released,
//!   and a replica below its share takes it with a new epoch. The mapping it hands over is the
//!   one it ranks lowest ([`rank`]), so repeated decisions agree with each other.
//! * **Convergence.** A replica with exactly ⌈M/N⌉ neither takes nor hands over, and
//!   N·⌈M/N⌉ ≥ M, so once N is stable every mapping has an owner and nobody moves. When an
//!   owner dies its leases end at once (the database or the kernel drops its locks) and its
//!   heartbeat expires after the time to live; the others' share grows, and they take its
//!   mappings.
//! * **Starting.** A new replica waits one heartbeat before it takes anything, so replicas
//!   started together see each other first instead of the first one taking everything.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sheetsync_core::{ErrorKind, LeaseRecord, Ownership, Result, StateStore};
use tokio::sync::watch;

/// How replicas share mappings.
#[derive(Debug, Clone)]
pub struct ShareOptions {
    /// Divide the mappings between replicas (the default). Off: every replica takes every
    /// mapping it can (hot standby: the first to start runs them all).
    pub enabled: bool,
    /// How often a replica writes its heartbeat and reconsiders its share.
    pub heartbeat: Duration,
    /// How long a replica counts as alive after its last heartbeat. Together with one
    /// heartbeat and the lease retry, it bounds how long the mappings of a replica that died
    /// wait for another.
    pub ttl: Duration,
}

impl Default for ShareOptions {
    fn default() -> Self {
        ShareOptions {
            enabled: true,
            heartbeat: Duration::from_secs(1),
            ttl: Duration::from_secs(5),
        }
    }
}

/// The most mappings one of `replicas` replicas runs: ⌈mappings / replicas⌉.
pub fn fair_share(mappings: usize, replicas: usize) -> usize {
    mappings.div_ceil(replicas.max(1))
}

/// What a replica that runs `held` of `mappings` mappings, among `replicas`, does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Below its share: take a free mapping.
    Take,
    /// At its share: keep what it runs.
    Hold,
    /// Above its share: hand one mapping over.
    HandOver,
}

/// The share decision (see the module docs).
pub fn step(held: usize, mappings: usize, replicas: usize) -> Step {
    let share = fair_share(mappings, replicas);
    match held.cmp(&share) {
        std::cmp::Ordering::Less => Step::Take,
        std::cmp::Ordering::Equal => Step::Hold,
        std::cmp::Ordering::Greater => Step::HandOver,
    }
}

/// How much `replica` wants `mapping` (rendezvous hashing): each replica ranks the mappings
/// differently, and always the same way.
pub fn rank(replica: &str, mapping: &str) -> u64 {
    sheetsync_core::Row::new(vec![replica.into(), mapping.into()])
        .hash()
        .get() as u64
}

/// Which of the mappings `replica` runs it hands over: the one it ranks lowest.
pub fn hand_over_choice<'a>(
    replica: &str,
    held: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    held.into_iter().min_by_key(|m| (rank(replica, m), *m))
}

/// Where a mapping runs, as this process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Its engine is being built, or the process has not looked for its lease yet.
    Starting,
    /// It does not run here: another process holds its lease (`owner`, as the lease record
    /// says; the record of an owner that died stays until the next takeover), or this
    /// replica runs its share already (`full`).
    Waiting {
        /// Who last took the lease, if anyone.
        owner: Option<LeaseRecord>,
        /// This replica runs ⌈M/N⌉ mappings already, so it leaves this one to another.
        full: bool,
    },
    /// It runs here, under this lease epoch (`None` without leases).
    Running {
        /// The lease's epoch.
        epoch: Option<u64>,
    },
}

/// A mapping's place in this process: where it runs, and a request to hand it over.
#[derive(Debug)]
pub struct Seat {
    placement: watch::Sender<Placement>,
    hand_over: watch::Sender<bool>,
}

impl Seat {
    /// A mapping that has not started.
    pub fn new() -> Arc<Seat> {
        Arc::new(Seat {
            placement: watch::channel(Placement::Starting).0,
            hand_over: watch::channel(false).0,
        })
    }

    /// Where the mapping runs now.
    pub fn placement(&self) -> Placement {
        self.placement.borrow().clone()
    }

    /// Changes where the mapping runs.
    pub fn place(&self, placement: Placement) {
        self.placement.send_if_modified(|p| {
            let changed = *p != placement;
            *p = placement;
            changed
        });
    }

    /// Resolves once the mapping waits (does not run here).
    pub async fn waiting(&self) {
        let mut rx = self.placement.subscribe();
        let _ = rx
            .wait_for(|p| matches!(p, Placement::Waiting { .. }))
            .await;
    }

    /// Asks the mapping's engine to stop after its cycle and give up its lease.
    pub fn request_hand_over(&self) {
        self.hand_over.send_replace(true);
    }

    /// Whether a hand-over was asked for and not yet done.
    pub fn hand_over_requested(&self) -> bool {
        *self.hand_over.borrow()
    }

    /// Resolves once a hand-over is asked for.
    pub async fn hand_over_asked(&self) {
        let mut rx = self.hand_over.subscribe();
        let _ = rx.wait_for(|h| *h).await;
    }

    /// The hand-over is done (the engine stopped, its lease is released).
    pub fn handed_over(&self) {
        self.hand_over.send_replace(false);
    }
}

/// This replica's part in sharing, for status: who it is, how many replicas are alive, its
/// share and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareStatus {
    /// This replica's name (host and process).
    pub replica: String,
    /// Replicas alive (this one included); 0 until the first heartbeats are in.
    pub replicas: usize,
    /// The most mappings it runs: ⌈M/N⌉ (M with sharing off).
    pub share: usize,
    /// The mappings it runs or is taking now.
    pub held: Vec<String>,
    /// Whether mappings are divided between replicas.
    pub enabled: bool,
}

/// The sharing of one process's mappings with its replicas.
pub struct Share {
    me: String,
    options: ShareOptions,
    /// One state store per database the mappings keep their state in.
    stores: Vec<Arc<dyn StateStore>>,
    seats: Vec<(String, Arc<Seat>)>,
    held: Mutex<BTreeSet<String>>,
    /// Replicas alive; 0 until this one has looked.
    replicas: AtomicUsize,
}

impl Share {
    /// Sharing of `seats` (each mapping's name and seat) by replica `me`, whose membership
    /// lives in `stores` (one per database).
    pub fn new(
        me: String,
        options: ShareOptions,
        stores: Vec<Arc<dyn StateStore>>,
        seats: Vec<(String, Arc<Seat>)>,
    ) -> Arc<Share> {
        Arc::new(Share {
            me,
            options,
            stores,
            seats,
            held: Mutex::new(BTreeSet::new()),
            replicas: AtomicUsize::new(0),
        })
    }

    fn share(&self) -> usize {
        let m = self.seats.len();
        match self.options.enabled {
            true => fair_share(m, self.replicas.load(Ordering::Relaxed)),
            false => m,
        }
    }

    /// This replica's part, now.
    pub fn status(&self) -> ShareStatus {
        ShareStatus {
            replica: self.me.clone(),
            replicas: self.replicas.load(Ordering::Relaxed),
            share: self.share(),
            held: self.held.lock().expect("held").iter().cloned().collect(),
            enabled: self.options.enabled,
        }
    }

    /// Whether this replica has counted the replicas alive yet (one heartbeat after start).
    pub fn settled(&self) -> bool {
        self.replicas.load(Ordering::Relaxed) > 0
    }

    /// Counts `mapping` as run here if this replica is below its share (and knows the
    /// membership): the returned reservation keeps it counted until dropped.
    pub fn try_reserve(self: &Arc<Self>, mapping: &str) -> Option<Reservation> {
        if self.replicas.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut held = self.held.lock().expect("held");
        let below = held.contains(mapping) || held.len() < self.share();
        if !below {
            return None;
        }
        held.insert(mapping.to_string());
        Some(Reservation {
            share: self.clone(),
            mapping: mapping.to_string(),
        })
    }

    /// Writes heartbeats and rebalances until `stop`, then leaves the membership.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.options.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                _ = tick.tick() => {}
            }
            let alive = self.beat().await;
            // The first round only announces this replica: the next one sees who else
            // started together with it.
            if std::mem::take(&mut first) {
                continue;
            }
            if let Some(n) = alive {
                let before = self.replicas.swap(n, Ordering::Relaxed);
                if before != n {
                    tracing::info!(
                        replicas = n,
                        share = self.share(),
                        mappings = self.seats.len(),
                        "replicas alive changed"
                    );
                }
            }
            self.rebalance();
        }
        for store in &self.stores {
            if let Err(e) = store.leave(&self.me).await {
                tracing::warn!(error = %e, "could not remove this replica's heartbeat");
            }
        }
    }

    /// Writes this replica's heartbeat in every database; the replicas alive in any of them
    /// (`None` when no database answered).
    async fn beat(&self) -> Option<usize> {
        let mut alive = BTreeSet::from([self.me.clone()]);
        let (mut answered, mut failed) = (false, false);
        for store in &self.stores {
            match store.heartbeat(&self.me, self.options.ttl).await {
                Ok(names) => {
                    answered = true;
                    alive.extend(names);
                }
                // No membership there (in-memory SQLite): nobody else can reach it either.
                Err(e) if e.kind() == ErrorKind::Unsupported => {}
                Err(e) => {
                    failed = true;
                    tracing::warn!(error = %e, "could not write this replica's heartbeat");
                }
            }
        }
        (answered || !failed).then_some(alive.len())
    }

    /// Hands one mapping over when this replica runs more than its share, unless one is
    /// being handed over already.
    fn rebalance(&self) {
        let held = self.held.lock().expect("held").clone();
        let n = self.replicas.load(Ordering::Relaxed);
        if !self.options.enabled || step(held.len(), self.seats.len(), n) != Step::HandOver {
            return;
        }
        let seat = |name: &str| self.seats.iter().find(|(m, _)| m == name).map(|(_, s)| s);
        let running_here = |name: &&str| {
            seat(name).is_some_and(|s| matches!(s.placement(), Placement::Running { .. }))
        };
        if held
            .iter()
            .any(|m| seat(m).is_some_and(|s| s.hand_over_requested()))
        {
            return;
        }
        let candidates = held.iter().map(String::as_str).filter(running_here);
        if let Some(name) = hand_over_choice(&self.me, candidates) {
            tracing::info!(mapping = name, held = held.len(), share = self.share(), replicas = n, "handing the mapping over to another replica after its cycle: this one runs more than its share");
            if let Some(s) = seat(name) {
                s.request_hand_over();
            }
        }
    }
}

/// A mapping counted as run by this replica (see [`Share::try_reserve`]); dropping it gives
/// the place back.
pub struct Reservation {
    share: Arc<Share>,
    mapping: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.share.held.lock().expect("held").remove(&self.mapping);
    }
}

/// A lease that keeps its mapping's reservation: the mapping counts as run here exactly as
/// long as the engine holds the lease.
pub struct SeatedLease {
    lease: Arc<dyn Ownership>,
    _reservation: Option<Reservation>,
}

impl SeatedLease {
    /// `lease`, keeping `reservation` until dropped.
    pub fn wrap(lease: Arc<dyn Ownership>, reservation: Option<Reservation>) -> Arc<dyn Ownership> {
        Arc::new(SeatedLease {
            lease,
            _reservation: reservation,
        })
    }
}

#[async_trait::async_trait]
impl Ownership for SeatedLease {
    fn epoch(&self) -> u64 {
        self.lease.epoch()
    }

    async fn check(&self) -> Result<()> {
        self.lease.check().await
    }

    async fn lost(&self) {
        self.lease.lost().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_the_ceiling() {
        assert_eq!(fair_share(6, 3), 2);
        assert_eq!(fair_share(6, 2), 3);
        assert_eq!(fair_share(7, 3), 3);
        assert_eq!(fair_share(6, 1), 6);
        assert_eq!(fair_share(2, 3), 1);
        assert_eq!(fair_share(0, 3), 0);
        assert_eq!(fair_share(6, 0), 6, "no membership yet counts as alone");
    }

    #[test]
    fn replicas_take_below_hold_at_and_hand_over_above_their_share() {
        assert_eq!(step(1, 6, 3), Step::Take);
        assert_eq!(step(2, 6, 3), Step::Hold);
        assert_eq!(step(3, 6, 3), Step::HandOver);
        // A replica died: the two left take its mappings.
        assert_eq!(step(2, 6, 2), Step::Take);
        assert_eq!(step(3, 6, 2), Step::Hold);
        // One joined: the one that ran everything gives back, one at a time.
        assert_eq!(step(6, 6, 2), Step::HandOver);
    }

    /// Simulates replicas that each take free mappings below their share and hand one over
    /// above it: every mapping ends with one owner, none above ⌈M/N⌉, and nothing moves once
    /// converged.
    #[test]
    fn shares_converge_without_flapping() {
        for (m, n) in [(6, 3), (6, 2), (7, 3), (2, 3), (6, 1), (10, 4)] {
            let mut owner: Vec<Option<usize>> = vec![None; m];
            // Replica 0 started first and took everything.
            owner.iter_mut().for_each(|o| *o = Some(0));
            let held = |owner: &[Option<usize>], r| owner.iter().filter(|o| **o == Some(r)).count();
            let mut moves = 0;
            for _round in 0..50 {
                let before = owner.clone();
                for r in 0..n {
                    match step(held(&owner, r), m, n) {
                        Step::HandOver => {
                            let names: Vec<String> = (0..m).map(|i| format!("m{i}")).collect();
                            let mine = (0..m)
                                .filter(|i| owner[*i] == Some(r))
                                .map(|i| names[i].as_str());
                            let give = hand_over_choice(&format!("r{r}"), mine).unwrap();
                            let i = names.iter().position(|x| x == give).unwrap();
                            owner[i] = None;
                        }
                        Step::Take => {
                            if let Some(i) = owner.iter().position(Option::is_none) {
                                owner[i] = Some(r);
                            }
                        }
                        Step::Hold => {}
                    }
                }
                moves += owner.iter().zip(&before).filter(|(a, b)| a != b).count();
                if owner == before && owner.iter().all(Option::is_some) {
                    break;
                }
            }
            assert!(owner.iter().all(Option::is_some), "{m} over {n}: {owner:?}");
            for r in 0..n {
                assert!(
                    held(&owner, r) <= fair_share(m, n),
                    "{m} over {n}: {owner:?}"
                );
            }
            let settled = owner.clone();
            for r in 0..n {
                assert_ne!(step(held(&owner, r), m, n), Step::HandOver);
                if step(held(&owner, r), m, n) == Step::Take {
                    assert!(
                        owner.iter().all(Option::is_some),
                        "a replica below its share would take a free one"
                    );
                }
            }
            assert_eq!(owner, settled);
            assert!(moves <= 2 * m, "{m} over {n}: {moves} moves");
        }
    }

    #[test]
    fn each_replica_ranks_the_mappings_its_own_way_and_always_the_same() {
        let held = ["a", "b", "c", "d"];
        let first = hand_over_choice("host:1", held).unwrap();
        assert_eq!(hand_over_choice("host:1", held), Some(first));
        let choices: BTreeSet<_> = (0..20)
            .map(|i| hand_over_choice(&format!("host:{i}"), held).unwrap())
            .collect();
        assert!(
            choices.len() > 1,
            "every replica would give up the same mapping"
        );
        assert_eq!(hand_over_choice("host:1", []), None);
    }
}
