//! Directed graphs over leader ids, the wiring of a [`Topology::Custom`](crate::Topology::Custom).
//!
//! A [`Graph`] stores, for every possible leader id, the set of leaders it has a link *to*, as one
//! [`LeaderSet`] bit mask. With at most [`MAX_LEADERS`] (64) leaders, a breadth-first search or a
//! reachability closure is a loop of at most 64 rounds of bit operations, with no allocation.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::{LeaderId, LeaderSet, MAX_LEADERS};

/// A directed graph over leader ids: for each leader, the leaders it sends to (its out-neighbours).
///
/// **Self-loops are ignored** by every way of building a graph ([`Graph::add_edge`],
/// [`Graph::with_edge`], [`Graph::add_link`], collecting from an iterator, deserializing): a leader
/// never forwards to itself, so a self-loop would carry no meaning. Duplicate edges collapse into one.
///
/// Serialized as its edge list in ascending `(from, to)` order, e.g. `[[0,1],[1,0]]`, which reads
/// well in a configuration file. Out-of-range ids are rejected when decoding, like any [`LeaderId`].
///
/// ```
/// use roundtable_topologies::{Graph, LeaderId, LeaderSet};
/// let id = |i: usize| LeaderId::new(i).expect("id in range");
/// let graph = Graph::new().with_edge(id(0), id(1)).with_link(id(1), id(2)).with_edge(id(2), id(2));
/// assert_eq!(
///     graph.edges().collect::<Vec<_>>(),
///     vec![(id(0), id(1)), (id(1), id(2)), (id(2), id(1))],
/// );
/// assert_eq!(graph.out_neighbours(id(1)), LeaderSet::single(id(2)));
/// assert_eq!(graph.in_neighbours(id(1)), LeaderSet::single(id(0)).with(id(2)));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<(LeaderId, LeaderId)>", into = "Vec<(LeaderId, LeaderId)>")]
pub struct Graph {
    /// `out[i]` = the out-neighbours of leader `i`. Invariant: `out[i]` never contains `i`.
    /// Boxed so that a [`Topology`](crate::Topology) stays small (512 bytes live on the heap).
    out: Box<[LeaderSet; MAX_LEADERS]>,
}

impl Graph {
    /// The graph with no edges.
    #[must_use]
    pub fn new() -> Self {
        Graph { out: Box::new([LeaderSet::EMPTY; MAX_LEADERS]) }
    }

    /// The directed ring over `members` in ascending id order: each member links to the next one,
    /// the highest back to the lowest. One member gives no edges; two give a link both ways.
    #[must_use]
    pub fn ring(members: LeaderSet) -> Self {
        let mut graph = Graph::new();
        for from in members {
            if let Some(to) = members.next_after(from) {
                graph.add_edge(from, to);
            }
        }
        graph
    }

    /// The complete directed graph over `members`: every member links to every other.
    #[must_use]
    pub fn complete(members: LeaderSet) -> Self {
        let mut graph = Graph::new();
        for from in members {
            graph.out[from.index()] = members.without(from);
        }
        graph
    }

    /// Adds the edge `from → to`. Returns whether it was new; a self-loop is ignored (returns `false`).
    pub fn add_edge(&mut self, from: LeaderId, to: LeaderId) -> bool {
        if from == to {
            return false;
        }
        self.out[from.index()].insert(to)
    }

    /// This graph with the edge `from → to` added (a self-loop is ignored).
    #[must_use]
    pub fn with_edge(mut self, from: LeaderId, to: LeaderId) -> Self {
        self.add_edge(from, to);
        self
    }

    /// Adds the edges `a → b` and `b → a`. Returns whether either was new; `a == b` is ignored.
    pub fn add_link(&mut self, a: LeaderId, b: LeaderId) -> bool {
        let forward = self.add_edge(a, b);
        let backward = self.add_edge(b, a);
        forward || backward
    }

    /// This graph with the edges `a → b` and `b → a` added (`a == b` is ignored).
    #[must_use]
    pub fn with_link(mut self, a: LeaderId, b: LeaderId) -> Self {
        self.add_link(a, b);
        self
    }

    /// Removes the edge `from → to`. Returns whether it was present.
    pub fn remove_edge(&mut self, from: LeaderId, to: LeaderId) -> bool {
        self.out[from.index()].remove(to)
    }

    /// Whether the edge `from → to` is present.
    #[must_use]
    pub fn has_edge(&self, from: LeaderId, to: LeaderId) -> bool {
        self.out[from.index()].contains(to)
    }

    /// The leaders `id` has an edge to.
    #[must_use]
    pub fn out_neighbours(&self, id: LeaderId) -> LeaderSet {
        self.out[id.index()]
    }

    /// The leaders that have an edge to `id`.
    #[must_use]
    pub fn in_neighbours(&self, id: LeaderId) -> LeaderSet {
        LeaderId::range(MAX_LEADERS).filter(|from| self.out[from.index()].contains(id)).collect()
    }

    /// The leaders that appear in at least one edge, as source or target.
    #[must_use]
    pub fn leaders(&self) -> LeaderSet {
        let mut leaders = LeaderSet::EMPTY;
        for from in LeaderId::range(MAX_LEADERS) {
            let out = self.out[from.index()];
            if !out.is_empty() {
                leaders = leaders.with(from).union(out);
            }
        }
        leaders
    }

    /// The number of edges.
    #[must_use]
    pub fn edge_count(&self) -> usize {
        self.out.iter().map(|out| out.len()).sum()
    }

    /// Whether the graph has no edges.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.out.iter().all(|out| out.is_empty())
    }

    /// All edges `(from, to)` in ascending order (by `from`, then by `to`).
    pub fn edges(&self) -> impl Iterator<Item = (LeaderId, LeaderId)> + '_ {
        LeaderId::range(MAX_LEADERS).flat_map(move |from| self.out[from.index()].iter().map(move |to| (from, to)))
    }

    /// The leaders reachable from `start` along paths that stay inside `within` (the subgraph
    /// induced by `within`), including `start` itself. Empty when `start` is not in `within`.
    #[must_use]
    pub fn reachable_from(&self, start: LeaderId, within: LeaderSet) -> LeaderSet {
        if !within.contains(start) {
            return LeaderSet::EMPTY;
        }
        let mut reached = LeaderSet::single(start);
        let mut frontier = reached;
        // Every round adds at least one leader to `reached`, so there are at most MAX_LEADERS rounds.
        while !frontier.is_empty() {
            let mut next = LeaderSet::EMPTY;
            for from in frontier {
                next = next.union(self.out[from.index()]);
            }
            frontier = next.intersection(within).difference(reached);
            reached = reached.union(frontier);
        }
        debug_assert!(reached.is_subset(within));
        reached
    }

    /// The members of `within` that at least one other member of `within` cannot reach inside the
    /// subgraph induced by `within`. Empty exactly when that subgraph is strongly connected.
    #[must_use]
    pub fn unreachable(&self, within: LeaderSet) -> LeaderSet {
        let mut missed = LeaderSet::EMPTY;
        for from in within {
            missed = missed.union(within.difference(self.reachable_from(from, within)));
        }
        missed
    }

    /// Whether every member of `within` reaches every other inside the subgraph induced by `within`.
    /// The empty set and a single leader are strongly connected.
    #[must_use]
    pub fn is_strongly_connected(&self, within: LeaderSet) -> bool {
        // Strongly connected ⇔ one member reaches all and all reach it; the second half is a
        // reachability search on the reversed graph, which costs a transpose. Cheap either way.
        let Some(root) = within.min() else {
            return true;
        };
        if self.reachable_from(root, within) != within {
            return false;
        }
        self.transposed().reachable_from(root, within) == within
    }

    /// The graph with every edge reversed.
    #[must_use]
    pub fn transposed(&self) -> Graph {
        let mut reversed = Graph::new();
        for (from, to) in self.edges() {
            reversed.add_edge(to, from);
        }
        reversed
    }

    /// The children of `node` in the breadth-first spanning tree rooted at `root` over the subgraph
    /// induced by `within`.
    ///
    /// The tree is canonical: leaders are expanded level by level, and within a level in ascending
    /// id order; each leader's parent is the first leader to discover it, which is the lowest-id
    /// leader of the previous level with an edge to it. Empty when `root` or `node` is not in
    /// `within`, or `node` is not reachable from `root`.
    ///
    /// Runs in at most 64 rounds of bit operations and allocates nothing: this is the hot path of
    /// [`Topology::Custom`](crate::Topology::Custom), called for every entry at every hop.
    #[must_use]
    pub fn tree_children(&self, within: LeaderSet, root: LeaderId, node: LeaderId) -> LeaderSet {
        if !within.contains(root) || !within.contains(node) {
            return LeaderSet::EMPTY;
        }
        let mut visited = LeaderSet::single(root);
        let mut frontier = visited;
        // Every round visits at least one new leader, so there are at most MAX_LEADERS rounds.
        while !frontier.is_empty() {
            let mut next = LeaderSet::EMPTY;
            for parent in frontier {
                let discovered = self.out[parent.index()].intersection(within).difference(visited);
                if parent == node {
                    return discovered;
                }
                visited = visited.union(discovered);
                next = next.union(discovered);
            }
            frontier = next;
        }
        LeaderSet::EMPTY
    }
}

impl Default for Graph {
    fn default() -> Self {
        Graph::new()
    }
}

impl FromIterator<(LeaderId, LeaderId)> for Graph {
    /// Collects edges; self-loops are ignored.
    fn from_iter<I: IntoIterator<Item = (LeaderId, LeaderId)>>(iter: I) -> Self {
        let mut graph = Graph::new();
        for (from, to) in iter {
            graph.add_edge(from, to);
        }
        graph
    }
}

impl From<Vec<(LeaderId, LeaderId)>> for Graph {
    /// Builds a graph from an edge list; self-loops are ignored.
    fn from(edges: Vec<(LeaderId, LeaderId)>) -> Self {
        edges.into_iter().collect()
    }
}

impl From<Graph> for Vec<(LeaderId, LeaderId)> {
    /// The edge list in ascending order.
    fn from(graph: Graph) -> Self {
        graph.edges().collect()
    }
}

/// Renders as the edge list, e.g. `Graph[L0->L1, L1->L0]`.
impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Graph[")?;
        for (i, (from, to)) in self.edges().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{from}->{to}")?;
        }
        f.write_str("]")
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

    #[test]
    fn self_loops_are_ignored_and_edges_are_ascending() {
        let mut graph = Graph::new();
        assert!(!graph.add_edge(id(3), id(3)));
        assert!(graph.add_edge(id(5), id(1)));
        assert!(!graph.add_edge(id(5), id(1)));
        assert!(graph.add_link(id(0), id(5)));
        assert!(!graph.add_link(id(4), id(4)));
        assert_eq!(format!("{graph:?}"), "Graph[L0->L5, L5->L0, L5->L1]".to_string());
        assert_eq!(graph.edge_count(), 3);
        assert_eq!(graph.leaders(), set(&[0, 1, 5]));
        assert!(graph.remove_edge(id(5), id(1)));
        assert!(!graph.has_edge(id(5), id(1)));
        let collected: Graph = [(id(2), id(2)), (id(2), id(7))].into_iter().collect();
        assert_eq!(collected.edges().collect::<Vec<_>>(), vec![(id(2), id(7))]);
        assert!(Graph::default().is_empty());
    }

    #[test]
    fn ring_and_complete() {
        let ring = Graph::ring(set(&[1, 4, 9]));
        assert_eq!(ring.edges().collect::<Vec<_>>(), vec![(id(1), id(4)), (id(4), id(9)), (id(9), id(1))]);
        assert!(Graph::ring(set(&[7])).is_empty());
        assert_eq!(Graph::complete(set(&[0, 1, 2])).edge_count(), 6);
        assert!(ring.is_strongly_connected(set(&[1, 4, 9])));
        assert_eq!(ring.transposed().out_neighbours(id(1)), set(&[9]));
    }

    #[test]
    fn reachability_stays_inside_the_induced_subgraph() {
        let ring = Graph::ring(set(&[0, 1, 2, 3]));
        assert_eq!(ring.reachable_from(id(0), set(&[0, 1, 2, 3])), set(&[0, 1, 2, 3]));
        // Without L2, the ring is cut: L0 reaches L1 only; L3 reaches L0 and L1.
        let live = set(&[0, 1, 3]);
        assert_eq!(ring.reachable_from(id(0), live), set(&[0, 1]));
        assert_eq!(ring.reachable_from(id(3), live), set(&[0, 1, 3]));
        assert_eq!(ring.reachable_from(id(2), live), LeaderSet::EMPTY);
        assert_eq!(ring.unreachable(live), set(&[0, 3]));
        assert!(!ring.is_strongly_connected(live));
        assert!(ring.is_strongly_connected(LeaderSet::EMPTY));
        assert!(ring.is_strongly_connected(set(&[2])));
    }

    #[test]
    fn tree_children_prefer_the_lowest_parent_of_the_previous_level() {
        // L0 -> L1, L0 -> L2; both L1 and L2 link to L3; L3 -> L0 closes it.
        let graph = Graph::new()
            .with_edge(id(0), id(2))
            .with_edge(id(0), id(1))
            .with_edge(id(2), id(3))
            .with_edge(id(1), id(3))
            .with_edge(id(3), id(0));
        let all = set(&[0, 1, 2, 3]);
        assert_eq!(graph.tree_children(all, id(0), id(0)), set(&[1, 2]));
        assert_eq!(graph.tree_children(all, id(0), id(1)), set(&[3]));
        assert_eq!(graph.tree_children(all, id(0), id(2)), LeaderSet::EMPTY);
        assert_eq!(graph.tree_children(all, id(0), id(3)), LeaderSet::EMPTY);
        // Without L1, L2 becomes L3's parent.
        let live = set(&[0, 2, 3]);
        assert_eq!(graph.tree_children(live, id(0), id(2)), set(&[3]));
        // A node outside `within`, or unreachable from the root, has no children.
        assert_eq!(graph.tree_children(live, id(0), id(1)), LeaderSet::EMPTY);
        assert_eq!(graph.tree_children(set(&[0, 3]), id(0), id(3)), LeaderSet::EMPTY);
    }
}
