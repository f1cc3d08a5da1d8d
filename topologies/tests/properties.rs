//! Property tests for the topologies, driven through a tiny delivery simulator.
//!
//! The simulator plays one entry through a cluster: a FIFO of `(receiver, sender, seen)` messages,
//! starting at the leader that holds the entry. Each leader forwards on its *first* receipt only
//! (that is what the runtime's duplicate suppression does); the message carries the path's seen-by
//! set, to which each sender adds itself and the origin. We count receipts per leader and check
//! who got the entry how many times.
//!
//! On failure, proptest shrinks and prints the minimal `Case`, which reproduces it. Failure
//! persistence is off, so no regression files are written into the source tree.

use std::collections::VecDeque;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use roundtable_topologies::{Graph, LeaderId, LeaderSet, Topology, TopologyError, MAX_LEADERS};

/// Upper bound on messages for one entry; (64 − 1)² is the worst case of relayed all-to-all.
const MESSAGES_MAX: usize = MAX_LEADERS * MAX_LEADERS;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

fn id(i: usize) -> LeaderId {
    LeaderId::new(i).expect("id in range")
}

/// Receipts per leader for one entry.
#[derive(Debug)]
struct Delivery {
    receipts: [usize; MAX_LEADERS],
}

impl Delivery {
    fn of(&self, leader: LeaderId) -> usize {
        self.receipts[leader.index()]
    }

    fn receivers(&self) -> LeaderSet {
        LeaderId::range(MAX_LEADERS).filter(|&l| self.of(l) > 0).collect()
    }
}

/// Plays one entry written at `origin` through `topology`, starting at `start`, which holds it
/// (`start == origin` normally; a live `start` with a dead origin models an orphaned entry).
/// Panics if the entry is still circulating after [`MESSAGES_MAX`] messages, and checks on every
/// hop that forward targets exclude the origin and the forwarder, and are live.
fn simulate(topology: &Topology, live: LeaderSet, origin: LeaderId, start: LeaderId) -> Delivery {
    let mut receipts = [0; MAX_LEADERS];
    let mut holds = LeaderSet::single(start);
    let mut queue = VecDeque::new();
    let sender = (start != origin).then_some(origin);
    let send = |queue: &mut VecDeque<_>, me, sender, seen: LeaderSet| {
        let targets = topology.forward_targets(live, origin, sender, me, seen);
        assert!(!targets.contains(origin) && !targets.contains(me));
        assert!(targets.is_subset(live));
        let carried = seen.with(me).with(origin);
        for to in targets {
            queue.push_back((to, me, carried));
        }
    };
    send(&mut queue, start, sender, LeaderSet::single(origin));
    let mut messages = 0;
    while let Some((me, from, seen)) = queue.pop_front() {
        messages += 1;
        assert!(messages <= MESSAGES_MAX, "entry still circulating");
        receipts[me.index()] += 1;
        if holds.insert(me) {
            send(&mut queue, me, Some(from), seen);
        }
    }
    Delivery { receipts }
}

/// One generated cluster situation.
#[derive(Debug, Clone)]
struct Case {
    members: LeaderSet,
    live: LeaderSet,
    origin: LeaderId,
    hub: LeaderId,
    /// A random ring over the members plus random extra edges: strongly connected over `members`,
    /// not necessarily over `live`.
    graph: Graph,
    /// `graph` plus a random ring over `live`: strongly connected over `members` and over `live`.
    live_connected: Graph,
}

/// 1..=12 member ids, either packed into 0..16 or spread over all of 0..64.
fn member_ids() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        proptest::collection::btree_set(0..16usize, 1..=12),
        proptest::collection::btree_set(0..MAX_LEADERS, 1..=12),
    ]
    .prop_map(|ids| ids.into_iter().collect())
}

fn ring_in_order(graph: &mut Graph, order: &[LeaderId]) {
    for (i, &from) in order.iter().enumerate() {
        graph.add_edge(from, order[(i + 1) % order.len()]);
    }
}

fn case() -> impl Strategy<Value = Case> {
    member_ids()
        .prop_flat_map(|ids| {
            let n = ids.len();
            (
                Just(ids.clone()).prop_shuffle(),
                Just(ids).prop_shuffle(),
                0..n,
                0..n,
                any::<u64>(),
                proptest::collection::vec((0..n, 0..n), 0..=2 * n),
            )
        })
        .prop_map(|(ring, live_order, origin, hub, live_mask, extra)| {
            let ring: Vec<_> = ring.into_iter().map(id).collect();
            let mut sorted = ring.clone();
            sorted.sort();
            let members: LeaderSet = ring.iter().copied().collect();
            let origin = sorted[origin];
            let live: LeaderSet = sorted
                .iter()
                .enumerate()
                .filter(|&(i, _)| live_mask & (1 << i) != 0)
                .map(|(_, &l)| l)
                .chain([origin])
                .collect();
            let mut graph = Graph::new();
            ring_in_order(&mut graph, &ring);
            for (a, b) in extra {
                graph.add_edge(sorted[a], sorted[b]);
            }
            let mut live_connected = graph.clone();
            let live_order: Vec<_> = live_order.into_iter().map(id).filter(|&l| live.contains(l)).collect();
            ring_in_order(&mut live_connected, &live_order);
            Case { members, live, origin, hub: sorted[hub], graph, live_connected }
        })
}

/// Every topology kind for a case; the custom graph is strongly connected over the live set.
fn topologies(case: &Case) -> [Topology; 5] {
    [
        Topology::Circle,
        Topology::Star { hub: case.hub },
        Topology::AllToAll { relay: false },
        Topology::AllToAll { relay: true },
        Topology::Custom(case.live_connected.clone()),
    ]
}

/// Reference reachability: Floyd–Warshall over the subgraph induced by `within`.
fn reaches(graph: &Graph, within: LeaderSet) -> Vec<Vec<bool>> {
    let mut r = vec![vec![false; MAX_LEADERS]; MAX_LEADERS];
    for a in within {
        r[a.index()][a.index()] = true;
        for b in graph.out_neighbours(a).intersection(within) {
            r[a.index()][b.index()] = true;
        }
    }
    for k in within {
        for a in within {
            for b in within {
                if r[a.index()][k.index()] && r[k.index()][b.index()] {
                    r[a.index()][b.index()] = true;
                }
            }
        }
    }
    r
}

/// Arbitrary graphs with ids in 0..16, including edges outside any member set.
fn any_graph() -> impl Strategy<Value = Graph> {
    proptest::collection::vec((0..16usize, 0..16usize), 0..40)
        .prop_map(|edges| edges.into_iter().map(|(a, b)| (id(a), id(b))).collect())
}

proptest! {
    #![proptest_config(config())]

    /// Property 1: without failures, every live leader other than the origin receives the entry
    /// exactly once, the origin never does, and no dead leader does — for every origin.
    #[test]
    fn exactly_once_delivery(case in case()) {
        let [circle, star, direct, _, custom] = topologies(&case);
        for topology in [circle, star, direct, custom] {
            for origin in case.live {
                let delivery = simulate(&topology, case.live, origin, origin);
                for leader in LeaderId::range(MAX_LEADERS) {
                    let expected = usize::from(case.live.contains(leader) && leader != origin);
                    prop_assert_eq!(
                        delivery.of(leader), expected,
                        "{:?} origin {} leader {}", topology, origin, leader
                    );
                }
            }
        }
    }

    /// Property 1 for custom graphs whose live subgraph may be disconnected: exactly the leaders
    /// reachable from the origin receive the entry, each exactly once; the rest are reported.
    #[test]
    fn custom_delivers_exactly_once_to_the_reachable(case in case()) {
        let topology = Topology::Custom(case.graph.clone());
        prop_assert_eq!(topology.validate(case.members), Ok(()));
        let rewiring = topology.rewire(case.members, case.live);
        let reference = reaches(&case.graph, case.live);
        for origin in case.live {
            let delivery = simulate(&topology, case.live, origin, origin);
            let reachable = case.graph.reachable_from(origin, case.live);
            prop_assert_eq!(delivery.receivers(), reachable.without(origin));
            for leader in case.live {
                prop_assert!(delivery.of(leader) <= 1);
                prop_assert_eq!(reachable.contains(leader), reference[origin.index()][leader.index()]);
            }
            prop_assert!(case.live.difference(reachable).is_subset(rewiring.unreachable));
        }
        prop_assert_eq!(
            rewiring.unreachable.is_empty(),
            case.graph.is_strongly_connected(case.live)
        );
    }

    /// Property 2: relayed all-to-all reaches every live leader at least once and at most
    /// `live − 1` times, never the origin, and terminates.
    #[test]
    fn relay_floods_with_bounded_duplicates(case in case()) {
        let topology = Topology::AllToAll { relay: true };
        let delivery = simulate(&topology, case.live, case.origin, case.origin);
        for leader in LeaderId::range(MAX_LEADERS) {
            let receipts = delivery.of(leader);
            if case.live.contains(leader) && leader != case.origin {
                prop_assert!(receipts >= 1 && receipts < case.live.len(), "{} got {}", leader, receipts);
            } else {
                prop_assert_eq!(receipts, 0);
            }
        }
    }

    /// Property 3: a circle entry whose origin died, picked up at some live leader, terminates,
    /// reaches each live leader at most once — exactly those between it and the origin's position.
    #[test]
    fn circle_with_dead_origin_stops(case in case(), start in any::<prop::sample::Index>()) {
        let live = case.live.without(case.origin);
        prop_assume!(!live.is_empty());
        let live_ids: Vec<_> = live.iter().collect();
        let start = live_ids[start.index(live_ids.len())];
        let delivery = simulate(&Topology::Circle, live, case.origin, start);
        let mut expected = LeaderSet::EMPTY;
        let mut at = start;
        while let Some(next) = live.next_after(at) {
            // Stop once the walk reaches or passes the origin's position.
            let passes = if at < next { at < case.origin && case.origin <= next } else { at < case.origin || case.origin <= next };
            if passes || next == start {
                break;
            }
            expected.insert(next);
            at = next;
        }
        prop_assert_eq!(delivery.receivers(), expected);
        for leader in LeaderId::range(MAX_LEADERS) {
            prop_assert!(delivery.of(leader) <= 1);
        }
    }

    /// Property 4: for arbitrary inputs — dead `me`, dead origin, any sender and seen set —
    /// forward targets never contain the origin or `me`, are live, and follow a link in use.
    #[test]
    fn targets_exclude_origin_and_self_and_are_live(
        case in case(),
        graph in any_graph(),
        live in any::<u64>(),
        origin in 0..16usize,
        me in 0..16usize,
        sender in proptest::option::of(0..16usize),
        seen in any::<u64>(),
    ) {
        let live = LeaderSet::from_bits(live & 0xffff);
        let (origin, me) = (id(origin), id(me));
        let mut all = topologies(&case).to_vec();
        all.push(Topology::Custom(graph));
        for topology in all {
            let targets = topology.forward_targets(
                live, origin, sender.map(id), me, LeaderSet::from_bits(seen).with(origin),
            );
            prop_assert!(!targets.contains(origin) && !targets.contains(me));
            prop_assert!(targets.is_subset(live));
            if !live.contains(me) {
                prop_assert!(targets.is_empty());
            }
            let edges = topology.edges(live);
            for to in targets {
                prop_assert!(edges.binary_search(&(me, to)).is_ok(), "{:?}: {}->{} is not a link", topology, me, to);
            }
        }
    }

    /// Property 5: the star's effective hub is deterministic, live, the configured hub when that one
    /// is live, and otherwise the first live leader after it in circular id order.
    #[test]
    fn star_hub_is_deterministic_and_live(hub in 0..MAX_LEADERS, live in any::<u64>(), sparse in any::<bool>()) {
        let live = LeaderSet::from_bits(if sparse { live & live.rotate_left(17) } else { live });
        let star = Topology::Star { hub: id(hub) };
        let chosen = star.effective_hub(live);
        prop_assert_eq!(chosen, star.clone().effective_hub(live));
        let reference = (0..MAX_LEADERS).map(|k| id((hub + k) % MAX_LEADERS)).find(|&l| live.contains(l));
        prop_assert_eq!(chosen, reference);
        match chosen {
            Some(chosen) => {
                prop_assert!(live.contains(chosen));
                if live.contains(id(hub)) {
                    prop_assert_eq!(chosen, id(hub));
                }
            }
            None => prop_assert!(live.is_empty()),
        }
    }

    /// Property 6: applying a rewiring to the links before gives exactly the links after; no link
    /// touches a dead leader; neighbours are the links in either direction.
    #[test]
    fn rewire_moves_between_edge_sets(case in case(), before in any::<u64>(), after in any::<u64>()) {
        let before = case.members.intersection(LeaderSet::from_bits(before));
        let after = case.members.intersection(LeaderSet::from_bits(after));
        let mut all = topologies(&case).to_vec();
        all.push(Topology::Custom(case.graph.clone()));
        for topology in all {
            let rewiring = topology.rewire(before, after);
            let old = topology.edges(before);
            let new = topology.edges(after);
            prop_assert!(rewiring.added.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(rewiring.removed.windows(2).all(|w| w[0] < w[1]));
            let mut applied: Vec<_> = old
                .iter()
                .filter(|edge| !rewiring.removed.contains(edge))
                .chain(rewiring.added.iter())
                .copied()
                .collect();
            applied.sort();
            prop_assert_eq!(&applied, &new);
            prop_assert!(rewiring.added.iter().all(|edge| !old.contains(edge)));
            prop_assert!(rewiring.removed.iter().all(|edge| old.contains(edge)));
            for &(from, to) in &new {
                prop_assert!(after.contains(from) && after.contains(to) && from != to);
            }
            prop_assert_eq!(rewiring.died, before.difference(after));
            prop_assert_eq!(rewiring.returned, after.difference(before));
            prop_assert_eq!(rewiring.hub_after, topology.effective_hub(after));
            prop_assert_eq!(rewiring.hub_before, topology.effective_hub(before));
            for me in case.members {
                let linked: LeaderSet = new
                    .iter()
                    .filter_map(|&(from, to)| {
                        if from == me { Some(to) } else if to == me { Some(from) } else { None }
                    })
                    .collect();
                prop_assert_eq!(topology.neighbours(after, me), linked);
            }
        }
    }

    /// `validate` accepts exactly the graphs that only link members and are strongly connected
    /// over them (checked against Floyd–Warshall).
    #[test]
    fn validate_matches_reference(case in case(), graph in any_graph()) {
        let members = case.members;
        let topology = Topology::Custom(graph.clone());
        let inside = graph.edges().all(|(a, b)| members.contains(a) && members.contains(b));
        let reference = reaches(&graph, members);
        let connected = members.iter().all(|a| members.iter().all(|b| reference[a.index()][b.index()]));
        match topology.validate(members) {
            Ok(()) => prop_assert!(inside && connected),
            Err(TopologyError::EdgeOutsideMembers { from, to, .. }) => {
                prop_assert!(!inside);
                prop_assert!(graph.has_edge(from, to));
            }
            Err(TopologyError::NotStronglyConnected { from, unreachable }) => {
                prop_assert!(inside && !connected);
                for to in unreachable {
                    prop_assert!(!reference[from.index()][to.index()]);
                }
            }
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
        prop_assert_eq!(Topology::Custom(case.graph.clone()).validate(members), Ok(()));
        prop_assert_eq!(Topology::Star { hub: case.hub }.validate(members), Ok(()));
    }
}
