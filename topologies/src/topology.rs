//! Topologies: who forwards an entry to whom, and how the wiring heals when leaders die or return.
//!
//! The classic multi-leader topologies (see `shared/background/multi-leader-replication.md`) are
//! circle, star and all-to-all. Each has a weakness; roundtable keeps their message pattern and
//! repairs the weakness by computing everything from the *live set* — the leaders the supervisor
//! currently believes alive. A topology is a value; [`Topology::forward_targets`] is a pure function
//! of (topology, live set, origin, sender, me, seen-by set), so the same inputs always give the
//! same forwarding, in the simulator and in production.
//!
//! **Circle.** Live leaders form a ring in ascending id order; each forwards an entry to the next
//! live leader, and the entry stops before it would return to its origin. In the textbook circle one
//! dead leader halts propagation, because its predecessor keeps sending into the void. Here the ring
//! is drawn over live leaders only, so when a leader dies its predecessor is rewired to its
//! successor ([`Topology::rewire`] reports the new edge). The stop rule is positional — a leader
//! does not forward when the hop to its successor would reach or pass the origin's *position* on
//! the ring — so an entry whose origin died in flight still stops after at most one lap. An entry
//! that was in flight to the leader that died is lost on that hop; anti-entropy between
//! [`Topology::neighbours`] repairs it. Cost: `n − 1` messages and `n − 1` hops per entry.
//!
//! **Star.** Outer leaders send their entries to a hub; the hub forwards every entry to all live
//! leaders except the origin. In the textbook star a dead hub partitions everyone. Here the hub in
//! use is [`Topology::effective_hub`]: the configured hub while it is live, otherwise the next live
//! id after it (wrapping), chosen the same way by every leader without coordination; when the
//! configured hub returns, it takes over again. Entries that were on their way to a dead hub are
//! repaired by anti-entropy. Cost: `n − 1` messages, at most 2 hops.
//!
//! **All-to-all.** Every leader sends its own entries directly to every other live leader:
//! `n − 1` messages, one hop, and a dead leader only takes itself out. With `relay: true`, every
//! receiver also passes the entry on to live leaders not yet known to hold it (the seen-by set
//! travels with the entry). That flooding survives broken links — an entry reaches everyone that is
//! connected to the origin by any path of working links — at the price of duplicates: up to
//! `(n − 1)²` messages per entry, which the runtime's duplicate suppression absorbs.
//!
//! **Custom.** Any directed [`Graph`] over the members. An entry travels down the breadth-first
//! spanning tree rooted at its origin over the subgraph induced by the live leaders (see
//! [`Graph::tree_children`] for the exact, canonical tree). When nothing fails, every live leader
//! reachable from the origin gets the entry exactly once, in `n − 1` messages. *Deviation from
//! `DESIGN.md`*, which says "flooding with seen-by suppression" for custom graphs: a BFS tree was
//! chosen to get exactly-once delivery instead of up to `(n − 1)²` messages; flooding is what
//! `AllToAll { relay: true }` is for. A graph that stops being strongly connected when leaders die
//! leaves some live leaders unreachable; [`Rewiring::unreachable`] reports them.
//!
//! No topology ever sends an entry back to its origin, to the sender itself, or to a leader that is
//! not live.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::{Graph, LeaderId, LeaderSet};

/// How the leaders of a cluster are wired, and therefore who forwards an entry to whom.
///
/// With `n` live leaders, one entry costs:
///
/// | topology | messages | hops | when a leader dies |
/// |---|---|---|---|
/// | `Circle` | `n − 1` | `n − 1` | the ring closes over it |
/// | `Star` | `n − 1` | ≤ 2 | a dead hub is replaced by the next live id |
/// | `AllToAll { relay: false }` | `n − 1` | 1 | only the dead leader is cut off |
/// | `AllToAll { relay: true }` | ≤ `(n − 1)²` | ≤ `n − 1` | floods around broken links |
/// | `Custom` | `n − 1` (BFS tree) | tree depth | leaders may become unreachable ([`Rewiring::unreachable`]) |
///
/// Everything is computed from the live set, so leaders that agree on who is alive agree on the
/// wiring without talking to each other. Entries lost on a hop to a leader that just died are
/// repaired by anti-entropy between [`Topology::neighbours`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topology {
    /// A ring over the live leaders in ascending id order; each leader forwards to the next live
    /// one, and the entry stops before it would reach its origin again.
    Circle,
    /// Outer leaders send to the hub; the hub forwards to everyone but the origin.
    Star {
        /// The configured hub. When it is not live, [`Topology::effective_hub`] picks a stand-in.
        hub: LeaderId,
    },
    /// Every leader sends its own entries to every other live leader.
    AllToAll {
        /// Whether receivers also pass entries on to live leaders not yet known to hold them
        /// (flooding; up to `(n − 1)²` messages per entry).
        relay: bool,
    },
    /// An arbitrary directed graph; entries travel down the BFS tree rooted at their origin.
    Custom(Graph),
}

/// Why a topology does not fit a cluster's members; returned by [`Topology::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The cluster has no members at all.
    #[error("a cluster needs at least one member")]
    NoMembers,
    /// The configured star hub is not one of the members.
    #[error("star hub {hub} is not a member of the cluster {members}")]
    HubNotMember {
        /// The configured hub.
        hub: LeaderId,
        /// The cluster's members.
        members: LeaderSet,
    },
    /// A custom graph has an edge touching a leader that is not a member.
    #[error("custom graph edge {from}->{to} touches a leader that is not a member of {members}")]
    EdgeOutsideMembers {
        /// The edge's source.
        from: LeaderId,
        /// The edge's target.
        to: LeaderId,
        /// The cluster's members.
        members: LeaderSet,
    },
    /// A custom graph is not strongly connected over the members: entries written at `from` would
    /// never reach `unreachable`. Add edges (or links) that give every member a path to every other.
    #[error("custom graph is not strongly connected: {from} cannot reach {unreachable}")]
    NotStronglyConnected {
        /// The lowest-id member that cannot reach every other member.
        from: LeaderId,
        /// The members `from` cannot reach.
        unreachable: LeaderSet,
    },
}

/// How the wiring changes when the live set changes; returned by [`Topology::rewire`].
///
/// Edges are directed `(from, to)` pairs, sorted ascending. Applying the change to
/// `topology.edges(before)` — drop `removed`, add `added` — gives exactly `topology.edges(after)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[must_use]
pub struct Rewiring {
    /// Leaders live before and not after.
    pub died: LeaderSet,
    /// Leaders live after and not before.
    pub returned: LeaderSet,
    /// Links in use after the change that were not in use before, sorted ascending.
    pub added: Vec<(LeaderId, LeaderId)>,
    /// Links in use before the change that are no longer in use, sorted ascending.
    pub removed: Vec<(LeaderId, LeaderId)>,
    /// The effective hub before the change (star only).
    pub hub_before: Option<LeaderId>,
    /// The effective hub after the change (star only).
    pub hub_after: Option<LeaderId>,
    /// Live leaders (after the change) that at least one other live leader cannot reach, so entries
    /// written there would not reach them. Only a custom graph can leave leaders unreachable. This
    /// is the full set as of `after`, not only the leaders that newly became unreachable.
    pub unreachable: LeaderSet,
}

impl Rewiring {
    /// Whether the change leaves the links and the hub as they were.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && !self.hub_changed()
    }

    /// Whether the effective hub changed.
    #[must_use]
    pub fn hub_changed(&self) -> bool {
        self.hub_before != self.hub_after
    }
}

/// Renders for traces, e.g.
/// `died {L2} returned {} added [L1->L3] removed [L1->L2, L2->L3]`, followed by
/// ` hub L0->L1` when the hub changed and ` unreachable {L4}` when some leaders are unreachable.
impl fmt::Display for Rewiring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn edges(f: &mut fmt::Formatter<'_>, edges: &[(LeaderId, LeaderId)]) -> fmt::Result {
            f.write_str("[")?;
            for (i, (from, to)) in edges.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{from}->{to}")?;
            }
            f.write_str("]")
        }
        write!(f, "died {} returned {} added ", self.died, self.returned)?;
        edges(f, &self.added)?;
        f.write_str(" removed ")?;
        edges(f, &self.removed)?;
        if self.hub_changed() {
            let hub = |hub: Option<LeaderId>| hub.map_or_else(|| "none".to_string(), |h| h.to_string());
            write!(f, " hub {}->{}", hub(self.hub_before), hub(self.hub_after))?;
        }
        if !self.unreachable.is_empty() {
            write!(f, " unreachable {}", self.unreachable)?;
        }
        Ok(())
    }
}

/// `circle`, `star (hub L0)`, `all-to-all`, `all-to-all with relay`, `custom (6 edges)`.
impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topology::Circle => f.write_str("circle"),
            Topology::Star { hub } => write!(f, "star (hub {hub})"),
            Topology::AllToAll { relay: false } => f.write_str("all-to-all"),
            Topology::AllToAll { relay: true } => f.write_str("all-to-all with relay"),
            Topology::Custom(graph) => write!(f, "custom ({} edges)", graph.edge_count()),
        }
    }
}

impl Topology {
    /// Forward targets for an entry: the leaders `me` sends it to.
    ///
    /// - `live`: the leaders currently believed alive.
    /// - `origin`: the leader where the entry was written.
    /// - `sender`: the leader `me` received the entry from; `None` when `me == origin`.
    /// - `me`: the leader asking.
    /// - `seen`: leaders known to already hold the entry (the seen-by set that travels with it).
    ///   The caller always includes `origin`; it may include more. Only `AllToAll { relay: true }`
    ///   consults it (together with `sender`); the other topologies route by position alone.
    ///
    /// The result never contains `origin` or `me`, only ever contains live leaders, and is empty
    /// when `me` is not live. Allocation-free for every topology; a custom graph costs one
    /// breadth-first search of at most 64 rounds of bit operations.
    ///
    /// ```
    /// use roundtable_topologies::{LeaderId, LeaderSet, Topology};
    /// let id = |i: usize| LeaderId::new(i).expect("id in range");
    /// let live = LeaderSet::first(5).without(id(2)); // L0..L4, and L2 has died
    /// let origin = id(1);
    /// let seen = LeaderSet::single(origin);
    ///
    /// // In a circle, L1 forwards its own write to the next live leader, closing over the dead L2.
    /// let targets = Topology::Circle.forward_targets(live, origin, None, origin, seen);
    /// assert_eq!(targets, LeaderSet::single(id(3)));
    /// // L0's successor would be the origin, so the entry stops there.
    /// let targets = Topology::Circle.forward_targets(live, origin, Some(id(4)), id(0), seen);
    /// assert!(targets.is_empty());
    ///
    /// // In a star whose hub L2 is dead, L3 stands in: the origin sends to it, it sends to the rest.
    /// let star = Topology::Star { hub: id(2) };
    /// assert_eq!(star.forward_targets(live, origin, None, origin, seen), LeaderSet::single(id(3)));
    /// assert_eq!(
    ///     star.forward_targets(live, origin, Some(origin), id(3), seen).to_string(),
    ///     "{L0,L4}",
    /// );
    /// ```
    #[must_use]
    pub fn forward_targets(
        &self,
        live: LeaderSet,
        origin: LeaderId,
        sender: Option<LeaderId>,
        me: LeaderId,
        seen: LeaderSet,
    ) -> LeaderSet {
        if !live.contains(me) {
            return LeaderSet::EMPTY;
        }
        let targets = match self {
            Topology::Circle => circle_successor(live, origin, me),
            Topology::Star { .. } => match self.effective_hub(live) {
                Some(hub) if hub == me => live,
                Some(hub) if me == origin => LeaderSet::single(hub),
                _ => LeaderSet::EMPTY,
            },
            Topology::AllToAll { relay } => {
                if me == origin {
                    live
                } else if *relay {
                    let known = match sender {
                        Some(sender) => seen.with(sender),
                        None => seen,
                    };
                    live.difference(known)
                } else {
                    LeaderSet::EMPTY
                }
            }
            Topology::Custom(graph) => graph.tree_children(live, origin, me),
        };
        let targets = targets.intersection(live).without(me).without(origin);
        debug_assert!(targets.is_subset(live) && !targets.contains(me));
        targets
    }

    /// The hub actually in use for this live set (star only): the configured hub while it is live,
    /// otherwise the next live id after it in ascending order, wrapping around. Every leader that
    /// agrees on `live` picks the same hub. `None` for other topologies or when nothing is live.
    #[must_use]
    pub fn effective_hub(&self, live: LeaderSet) -> Option<LeaderId> {
        match self {
            Topology::Star { hub } if live.contains(*hub) => Some(*hub),
            Topology::Star { hub } => live.next_after(*hub),
            _ => None,
        }
    }

    /// The directed links in use for this live set, sorted ascending by `(from, to)`: who may send
    /// entries to whom. Every forward target lies along one of these links, and no link touches a
    /// leader that is not live.
    #[must_use]
    pub fn edges(&self, live: LeaderSet) -> Vec<(LeaderId, LeaderId)> {
        let mut edges = Vec::new();
        for from in live {
            for to in self.links_from(live, from) {
                edges.push((from, to));
            }
        }
        edges
    }

    /// The leaders `me` is linked to in either direction for this live set: its anti-entropy
    /// partners. Empty when `me` is not live.
    #[must_use]
    pub fn neighbours(&self, live: LeaderSet, me: LeaderId) -> LeaderSet {
        if !live.contains(me) {
            return LeaderSet::EMPTY;
        }
        let mut neighbours = self.links_from(live, me);
        for from in live.without(me) {
            if self.links_from(live, from).contains(me) {
                neighbours.insert(from);
            }
        }
        neighbours
    }

    /// Live leaders that at least one other live leader cannot reach along the links in use. Only a
    /// custom graph can leave leaders unreachable; for the other topologies this is always empty.
    #[must_use]
    pub fn unreachable(&self, live: LeaderSet) -> LeaderSet {
        match self {
            Topology::Custom(graph) => graph.unreachable(live),
            _ => LeaderSet::EMPTY,
        }
    }

    /// The rewiring when the live set changes from `before` to `after`: the links added and
    /// removed (sorted), the effective hub before and after, who died and who returned, and which
    /// live leaders are unreachable after the change.
    pub fn rewire(&self, before: LeaderSet, after: LeaderSet) -> Rewiring {
        let old = self.edges(before);
        let new = self.edges(after);
        // Both lists are sorted and free of duplicates, so a set difference is a binary search each.
        let added: Vec<_> = new.iter().filter(|edge| old.binary_search(edge).is_err()).copied().collect();
        let removed: Vec<_> = old.iter().filter(|edge| new.binary_search(edge).is_err()).copied().collect();
        Rewiring {
            died: before.difference(after),
            returned: after.difference(before),
            added,
            removed,
            hub_before: self.effective_hub(before),
            hub_after: self.effective_hub(after),
            unreachable: self.unreachable(after),
        }
    }

    /// Checks this topology against the cluster's members: there is at least one member, a star's
    /// hub is a member, and a custom graph only links members and is strongly connected over them
    /// (every member can reach every other, so with all members live everyone gets every entry).
    pub fn validate(&self, members: LeaderSet) -> Result<(), TopologyError> {
        if members.is_empty() {
            return Err(TopologyError::NoMembers);
        }
        match self {
            Topology::Circle | Topology::AllToAll { .. } => Ok(()),
            Topology::Star { hub } => {
                if members.contains(*hub) {
                    Ok(())
                } else {
                    Err(TopologyError::HubNotMember { hub: *hub, members })
                }
            }
            Topology::Custom(graph) => {
                if let Some((from, to)) =
                    graph.edges().find(|&(from, to)| !members.contains(from) || !members.contains(to))
                {
                    return Err(TopologyError::EdgeOutsideMembers { from, to, members });
                }
                for from in members {
                    let unreachable = members.difference(graph.reachable_from(from, members));
                    if !unreachable.is_empty() {
                        return Err(TopologyError::NotStronglyConnected { from, unreachable });
                    }
                }
                Ok(())
            }
        }
    }

    /// The leaders `from` has a link to for this live set (see [`Topology::edges`]).
    fn links_from(&self, live: LeaderSet, from: LeaderId) -> LeaderSet {
        if !live.contains(from) {
            return LeaderSet::EMPTY;
        }
        let links = match self {
            Topology::Circle => live.next_after(from).map_or(LeaderSet::EMPTY, LeaderSet::single),
            Topology::Star { .. } => match self.effective_hub(live) {
                Some(hub) if hub == from => live,
                Some(hub) => LeaderSet::single(hub),
                None => LeaderSet::EMPTY,
            },
            Topology::AllToAll { .. } => live,
            Topology::Custom(graph) => graph.out_neighbours(from),
        };
        links.intersection(live).without(from)
    }
}

/// The circle's forwarding rule: the next live leader after `me`, unless the hop from `me`
/// (exclusive) to it (inclusive) reaches or passes `origin`'s position on the ring — then the entry
/// has completed its lap and stops. With a live origin the hop can only *reach* it; with a dead
/// origin it can pass over its position, which is what stops an orphaned entry after one lap.
fn circle_successor(live: LeaderSet, origin: LeaderId, me: LeaderId) -> LeaderSet {
    let Some(next) = live.next_after(me) else {
        return LeaderSet::EMPTY;
    };
    if in_arc(me, origin, next) {
        LeaderSet::EMPTY
    } else {
        LeaderSet::single(next)
    }
}

/// Whether `x` lies in the circular id interval `(from, to]` (walking upwards from `from`, wrapping
/// past the highest id). Requires `from != to`.
fn in_arc(from: LeaderId, x: LeaderId, to: LeaderId) -> bool {
    debug_assert_ne!(from, to);
    let (from, x, to) = (from.index(), x.index(), to.index());
    if from < to {
        from < x && x <= to
    } else {
        from < x || x <= to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> LeaderId {
        LeaderId::new(i).expect("in range")
    }

    fn set(ids: &[usize]) -> LeaderSet {
        ids.iter().map(|&i| id(i)).collect()
    }

    fn edges(pairs: &[(usize, usize)]) -> Vec<(LeaderId, LeaderId)> {
        pairs.iter().map(|&(a, b)| (id(a), id(b))).collect()
    }

    /// Forward targets of `me`, rendered like `{L1,L3}`, with `seen = {origin}`.
    fn check(topology: &Topology, live: &[usize], origin: usize, sender: Option<usize>, me: usize, expect: &str) {
        let targets =
            topology.forward_targets(set(live), id(origin), sender.map(id), id(me), LeaderSet::single(id(origin)));
        assert_eq!(targets.to_string(), expect, "{topology:?} live {live:?} origin {origin} me {me}");
    }

    #[test]
    fn circle_walks_once_around_and_stops_before_the_origin() {
        let circle = Topology::Circle;
        let live = [0, 1, 2, 3, 4];
        check(&circle, &live, 3, None, 3, "{L4}");
        check(&circle, &live, 3, Some(3), 4, "{L0}");
        check(&circle, &live, 3, Some(4), 0, "{L1}");
        check(&circle, &live, 3, Some(0), 1, "{L2}");
        check(&circle, &live, 3, Some(1), 2, "{}");
        check(&circle, &[5], 5, None, 5, "{}");
        check(&circle, &[2, 7], 7, None, 7, "{L2}");
        check(&circle, &[2, 7], 7, Some(7), 2, "{}");
    }

    #[test]
    fn circle_closes_over_a_dead_leader_and_stops_an_orphaned_entry() {
        let circle = Topology::Circle;
        // L2 died: L1 now forwards to L3.
        check(&circle, &[0, 1, 3, 4], 0, Some(0), 1, "{L3}");
        // Origin L2 died with its entry at L3: L3 → L4 → L0 → L1, and L1 stops because the hop to
        // L3 passes L2's position.
        check(&circle, &[0, 1, 3, 4], 2, Some(2), 3, "{L4}");
        check(&circle, &[0, 1, 3, 4], 2, Some(3), 4, "{L0}");
        check(&circle, &[0, 1, 3, 4], 2, Some(4), 0, "{L1}");
        check(&circle, &[0, 1, 3, 4], 2, Some(0), 1, "{}");
        // A dead leader forwards nothing.
        check(&circle, &[0, 1, 3, 4], 0, Some(1), 2, "{}");

        let rewiring = circle.rewire(set(&[0, 1, 2, 3, 4]), set(&[0, 1, 3, 4]));
        assert_eq!(rewiring.added, edges(&[(1, 3)]));
        assert_eq!(rewiring.removed, edges(&[(1, 2), (2, 3)]));
        assert_eq!(rewiring.died, set(&[2]));
        assert_eq!(rewiring.to_string(), "died {L2} returned {} added [L1->L3] removed [L1->L2, L2->L3]");
        let back = circle.rewire(set(&[0, 1, 3, 4]), set(&[0, 1, 2, 3, 4]));
        assert_eq!(back.added, rewiring.removed);
        assert_eq!(back.removed, rewiring.added);
        assert_eq!(back.returned, set(&[2]));
    }

    #[test]
    fn star_routes_through_the_hub_and_fails_over_deterministically() {
        let star = Topology::Star { hub: id(0) };
        let live = [0, 1, 2, 3];
        check(&star, &live, 2, None, 2, "{L0}");
        check(&star, &live, 2, Some(2), 0, "{L1,L3}");
        check(&star, &live, 2, Some(0), 1, "{}");
        check(&star, &live, 0, None, 0, "{L1,L2,L3}");
        // Hub L0 died: L1 stands in.
        check(&star, &[1, 2, 3], 2, None, 2, "{L1}");
        check(&star, &[1, 2, 3], 2, Some(2), 1, "{L3}");
        check(&star, &[1, 2, 3], 2, Some(2), 0, "{}");

        assert_eq!(star.effective_hub(set(&[0, 1, 2])), Some(id(0)));
        assert_eq!(star.effective_hub(set(&[1, 2])), Some(id(1)));
        assert_eq!(Topology::Star { hub: id(3) }.effective_hub(set(&[0, 1, 2])), Some(id(0)));
        assert_eq!(star.effective_hub(LeaderSet::EMPTY), None);
        assert_eq!(Topology::Circle.effective_hub(set(&[0, 1])), None);

        let rewiring = star.rewire(set(&[0, 1, 2]), set(&[1, 2]));
        assert_eq!(rewiring.added, edges(&[(1, 2), (2, 1)]));
        assert_eq!(rewiring.removed, edges(&[(0, 1), (0, 2), (1, 0), (2, 0)]));
        assert!(rewiring.hub_changed());
        assert!(rewiring.to_string().ends_with(" hub L0->L1"));
        // The configured hub takes over again when it returns.
        let back = star.rewire(set(&[1, 2]), set(&[0, 1, 2]));
        assert_eq!((back.hub_before, back.hub_after), (Some(id(1)), Some(id(0))));
        assert_eq!(
            star.rewire(set(&[0]), LeaderSet::EMPTY).to_string(),
            "died {L0} returned {} added [] removed [] hub L0->none"
        );
    }

    #[test]
    fn all_to_all_sends_directly_and_relays_only_when_asked() {
        let direct = Topology::AllToAll { relay: false };
        let relay = Topology::AllToAll { relay: true };
        let live = [0, 1, 2, 3];
        check(&direct, &live, 1, None, 1, "{L0,L2,L3}");
        check(&direct, &live, 1, Some(1), 2, "{}");
        check(&relay, &live, 1, None, 1, "{L0,L2,L3}");
        check(&relay, &live, 1, Some(1), 2, "{L0,L3}");
        // The sender is excluded even when the caller forgot to put it in `seen`.
        check(&relay, &live, 1, Some(3), 2, "{L0}");
        let seen = set(&[1, 3, 0]);
        assert_eq!(relay.forward_targets(set(&live), id(1), Some(id(3)), id(2), seen), LeaderSet::EMPTY);
        assert_eq!(direct.edges(set(&[4, 9])), edges(&[(4, 9), (9, 4)]));
        assert_eq!(direct.neighbours(set(&live), id(2)), set(&[0, 1, 3]));
    }

    #[test]
    fn custom_graph_uses_the_bfs_tree_of_the_origin() {
        // A ring 0 → 1 → 2 → 3 → 0 plus a chord 0 → 2.
        let graph = Graph::ring(set(&[0, 1, 2, 3])).with_edge(id(0), id(2));
        let custom = Topology::Custom(graph);
        let live = [0, 1, 2, 3];
        check(&custom, &live, 0, None, 0, "{L1,L2}");
        check(&custom, &live, 0, Some(0), 1, "{}");
        check(&custom, &live, 0, Some(0), 2, "{L3}");
        check(&custom, &live, 0, Some(2), 3, "{}");
        check(&custom, &live, 1, None, 1, "{L2}");
        check(&custom, &live, 1, Some(2), 3, "{L0}");
        check(&custom, &live, 1, Some(3), 0, "{}");
        // L3 → L0 → {L1, L2}: the origin L3 is never sent back to.
        check(&custom, &live, 3, Some(3), 0, "{L1,L2}");
        assert_eq!(custom.validate(set(&live)), Ok(()));
        assert_eq!(custom.unreachable(set(&live)), LeaderSet::EMPTY);

        // L3 dies: L2 can no longer reach anyone.
        let rewiring = custom.rewire(set(&live), set(&[0, 1, 2]));
        assert_eq!(rewiring.removed, edges(&[(2, 3), (3, 0)]));
        assert!(rewiring.added.is_empty());
        assert_eq!(rewiring.unreachable, set(&[0, 1]));
        assert!(rewiring.to_string().ends_with(" unreachable {L0,L1}"));
        check(&custom, &[0, 1, 2], 2, None, 2, "{}");
        assert_eq!(custom.neighbours(set(&[0, 1, 2]), id(2)), set(&[0, 1]));
        assert_eq!(custom.neighbours(set(&[0, 1, 2]), id(3)), LeaderSet::EMPTY);
    }

    #[test]
    fn edges_and_neighbours_follow_the_live_set() {
        let circle = Topology::Circle;
        assert_eq!(circle.edges(set(&[1, 3, 6])), edges(&[(1, 3), (3, 6), (6, 1)]));
        assert_eq!(circle.edges(set(&[5])), edges(&[]));
        assert_eq!(circle.neighbours(set(&[1, 3, 6]), id(3)), set(&[1, 6]));
        let star = Topology::Star { hub: id(3) };
        assert_eq!(star.neighbours(set(&[1, 3, 6]), id(1)), set(&[3]));
        assert_eq!(star.neighbours(set(&[1, 3, 6]), id(3)), set(&[1, 6]));
        assert!(star.rewire(set(&[1, 3]), set(&[1, 3])).is_empty());
    }

    #[test]
    fn validate_names_what_to_fix() {
        let members = set(&[0, 1, 2]);
        assert_eq!(Topology::Circle.validate(LeaderSet::EMPTY), Err(TopologyError::NoMembers));
        assert_eq!(Topology::Circle.validate(members), Ok(()));
        assert_eq!(Topology::AllToAll { relay: true }.validate(members), Ok(()));
        assert_eq!(Topology::Star { hub: id(2) }.validate(members), Ok(()));
        assert_eq!(
            Topology::Star { hub: id(5) }.validate(members),
            Err(TopologyError::HubNotMember { hub: id(5), members })
        );
        let outside = Topology::Custom(Graph::ring(members).with_edge(id(1), id(7)));
        assert_eq!(
            outside.validate(members),
            Err(TopologyError::EdgeOutsideMembers { from: id(1), to: id(7), members })
        );
        let path = Topology::Custom(Graph::new().with_link(id(0), id(1)).with_edge(id(1), id(2)));
        let error = path.validate(members);
        assert_eq!(error, Err(TopologyError::NotStronglyConnected { from: id(2), unreachable: set(&[0, 1]) }));
        assert_eq!(
            error.map_err(|e| e.to_string()),
            Err("custom graph is not strongly connected: L2 cannot reach {L0,L1}".to_string())
        );
        assert_eq!(Topology::Custom(Graph::new()).validate(set(&[4])), Ok(()));
    }

    #[test]
    fn arcs_wrap_around() {
        assert!(in_arc(id(1), id(3), id(3)));
        assert!(!in_arc(id(1), id(1), id(3)));
        assert!(!in_arc(id(1), id(4), id(3)));
        assert!(in_arc(id(6), id(0), id(1)));
        assert!(in_arc(id(6), id(7), id(1)));
        assert!(!in_arc(id(6), id(3), id(1)));
    }
}
