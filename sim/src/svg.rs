//! Space-time diagrams of a run, as SVG.
//!
//! [`render_svg`] draws a [`Trace`]'s marks the way Lamport drew executions ("Time, Clocks, and
//! the Ordering of Events in a Distributed System", 1978): one vertical lane per leader, time
//! downwards, one arrow per message from (sender, send time) to (receiver, delivery time). Lost
//! messages end in a cross; writes, dropped duplicates, causal waits, conflict decisions, crashes,
//! restarts, rejoins and rewirings are symbols on the lanes; a leader's lane is dashed while it is
//! down. Every element carries a `<title>` (a tooltip in a browser) with the details, and a legend
//! explains every symbol and colour.
//!
//! Marks of one kind at the same lane and instant (a catch-up batch's duplicates, say) are one
//! symbol with a count, whose tooltip lists them.
//!
//! **Time axis.** Piecewise linear over the instants at which something is drawn: the gap between
//! two consecutive instants is `px_per_ms · Δt`, clamped between [`SvgOptions::event_gap_px_min`]
//! (a burst stays legible) and [`SvgOptions::idle_gap_px_max`] (an idle second does not eat the
//! page). If the run does not fit in [`SvgOptions::height_px_max`], the longest gaps are
//! compressed further, then the scale shrinks. Ticks are drawn where their time maps, so their
//! labels stay true; a stretch drawn at most half as tall as the scale would draw it is shaded,
//! labelled with its duration and has both ends ticked.
//!
//! **Stable output.** The same trace gives the same bytes: marks are read in order, nothing
//! iterates a hash map, only exact float operations are used and coordinates are printed with
//! one decimal. Elements have stable `class` attributes for tests and styling: `lane` (one
//! element per leader, with `data-lane`), `msg <kind>` (one element per delivered message),
//! `lost <kind>` (one group per lost message), `mark <symbol>` (with `data-lane` and
//! `data-count`), `down-band`, `compressed`, `tick-label`, `legend`; `<kind>` is one of
//! `replicate`, `catch-up`, `digest`, `snapshot`, `other`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use roundtable_runtime::MAX_LEADERS;

use roundtable_actors::trace::{Actor, Mark, MarkLine, Trace};

/// How [`render_svg`] lays a diagram out. [`SvgOptions::default`] suits 3–9 leaders and a few
/// hundred events.
#[derive(Debug, Clone, PartialEq)]
pub struct SvgOptions {
    /// A heading drawn above the lanes (and the document's `<title>`).
    pub title: Option<String>,
    /// At least this many lanes (`L0`…); `None` infers the count from the trace. A leader that
    /// appears in the trace always gets a lane.
    pub leaders: Option<usize>,
    /// The tallest the time axis may grow, in pixels (the whole picture adds a header and a
    /// footer).
    pub height_px_max: f64,
    /// The preferred scale, in pixels per millisecond; shrunk when the run would not fit.
    pub px_per_ms: f64,
    /// The least vertical distance between two instants at which something is drawn, so that a
    /// burst does not overlap (shrunk only when even that would not fit).
    pub event_gap_px_min: f64,
    /// The most vertical distance between two consecutive instants: longer idle stretches are
    /// compressed to this (and further, down to 32 px, when the run would not fit otherwise,
    /// longest first) and labelled with their duration.
    pub idle_gap_px_max: f64,
    /// The horizontal distance between two lanes, in pixels.
    pub lane_spacing_px: f64,
    /// Whether writes are labelled with their dot and key next to the symbol.
    pub write_labels: bool,
}

impl Default for SvgOptions {
    fn default() -> Self {
        SvgOptions {
            title: None,
            leaders: None,
            height_px_max: 2400.0,
            px_per_ms: 4.0,
            event_gap_px_min: 8.0,
            idle_gap_px_max: 60.0,
            lane_spacing_px: 140.0,
            write_labels: true,
        }
    }
}

impl SvgOptions {
    fn px_per_ns(&self) -> f64 {
        self.px_per_ms / 1e6
    }

    /// The options with every number brought into a range that draws something sensible.
    fn sanitized(&self) -> SvgOptions {
        let finite_or = |v: f64, default: f64| if v.is_finite() { v } else { default };
        let d = SvgOptions::default();
        let event_gap_px_min = finite_or(self.event_gap_px_min, d.event_gap_px_min).clamp(0.0, 200.0);
        SvgOptions {
            title: self.title.clone(),
            leaders: self.leaders.map(|n| n.min(MAX_LEADERS)),
            height_px_max: finite_or(self.height_px_max, d.height_px_max).clamp(100.0, 100_000.0),
            px_per_ms: finite_or(self.px_per_ms, d.px_per_ms).clamp(0.0, 10_000.0),
            event_gap_px_min,
            idle_gap_px_max: finite_or(self.idle_gap_px_max, d.idle_gap_px_max).clamp(event_gap_px_min, 10_000.0),
            lane_spacing_px: finite_or(self.lane_spacing_px, d.lane_spacing_px).clamp(60.0, 1_000.0),
            write_labels: self.write_labels,
        }
    }
}

/// Draws `trace` as an SVG space-time diagram (a complete, standalone document). Pure and
/// deterministic: the same trace and options give the same bytes. Never panics; an empty trace
/// gives a diagram with no events.
#[must_use]
pub fn render_svg(trace: &Trace, options: &SvgOptions) -> String {
    render_marks_svg(&trace.marks(), options)
}

/// Draws marks (a trace's view for the diagram, [`Trace::marks`]) like [`render_svg`].
#[must_use]
pub fn render_marks_svg(marks: &[MarkLine], options: &SvgOptions) -> String {
    let options = options.sanitized();
    let scene = Scene::read(marks, &options);
    let axis = TimeAxis::build(&scene.instants(), AXIS_TOP_PX, &options);
    let layout = Layout::new(scene.lanes, &options, &axis);
    let mut out = String::new();
    layout.open(&mut out, &options, &scene);
    draw_time_axis(&mut out, &layout, &axis);
    draw_lanes(&mut out, &layout, &axis, &scene);
    draw_messages(&mut out, &layout, &axis, &scene);
    draw_marks(&mut out, &layout, &axis, &scene, &options);
    draw_legend(&mut out, &layout);
    out.push_str("</svg>\n");
    out
}

/// `text` with the XML special characters escaped (and the control characters XML 1.0 cannot
/// hold replaced by U+FFFD), for element text and attribute values alike.
#[must_use]
pub fn escape_xml(text: &str) -> Cow<'_, str> {
    let special =
        |c: char| matches!(c, '&' | '<' | '>' | '"' | '\'') || (c.is_control() && !matches!(c, '\t' | '\n' | '\r'));
    if !text.contains(special) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

// ---------------------------------------------------------------------------------------------
// What the trace says: lanes, messages, symbols, down intervals.

/// Where the time axis starts (below the title and the lane labels).
const AXIS_TOP_PX: f64 = 96.0;
/// The least height a compressed gap keeps while the scale can still shrink instead.
const IDLE_GAP_PX_FLOOR: f64 = 32.0;
/// A gap drawn at most `1 / COMPRESSED_RATIO_MIN` of its preferred height is shaded and labelled
/// as compressed (one compressed less stays plain: its tick labels still say the time).
const COMPRESSED_RATIO_MIN: f64 = 2.0;
/// Pixels below the last instant before the lanes end.
const AXIS_TAIL_PX: f64 = 18.0;
/// Header and footer together, subtracted from `height_px_max` for the axis.
const CHROME_PX: f64 = AXIS_TOP_PX + AXIS_TAIL_PX + 50.0;
/// The longest a lost message's stub is drawn, in pixels.
const LOST_STUB_PX: f64 = 48.0;
/// The most tick labels considered (a bound on the tick loop).
const TICKS_MAX: u64 = 2_000;

/// One message between leaders.
struct Message {
    from: usize,
    to: usize,
    kind: String,
    category: Category,
    bytes: usize,
    sent_ns: u64,
    at_ns: u64,
    delivered: bool,
}

/// One mark drawn as a symbol on a lane.
struct Placed {
    lane: usize,
    at_ns: u64,
    symbol: Symbol,
    /// What happened, for the tooltip.
    detail: String,
    /// The text next to the symbol (writes: dot and key).
    label: Option<String>,
}

/// The marks of one symbol at one lane and instant, drawn as one symbol with a count.
struct Group<'a> {
    lane: usize,
    at_ns: u64,
    symbol: Symbol,
    members: Vec<&'a Placed>,
}

/// The most details one grouped symbol's tooltip lists.
const GROUP_DETAILS_MAX: usize = 16;

/// What the diagram draws, read from the trace in order.
struct Scene {
    lanes: usize,
    messages: Vec<Message>,
    placed: Vec<Placed>,
    /// Per lane, the intervals the leader was down (`None`: until the end).
    down: Vec<Vec<(u64, Option<u64>)>>,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn lane_of(actor: Actor) -> Option<usize> {
    match actor {
        Actor::Leader(id) => Some(id.index()),
        _ => None,
    }
}

impl Scene {
    fn read(marks: &[MarkLine], options: &SvgOptions) -> Scene {
        let inferred = marks
            .iter()
            .flat_map(|m| {
                let ends = match &m.mark {
                    Mark::Message { from, to, .. } => [Some(from.index()), Some(to.index())],
                    _ => [None, None],
                };
                [lane_of(m.actor)].into_iter().chain(ends)
            })
            .flatten()
            .map(|i| i + 1)
            .max()
            .unwrap_or(0);
        let lanes = inferred.max(options.leaders.unwrap_or(0)).min(MAX_LEADERS);
        let mut scene = Scene { lanes, messages: Vec::new(), placed: Vec::new(), down: vec![Vec::new(); lanes] };
        for line in marks {
            let at_ns = ns(line.at);
            if let Mark::Message { from, to, kind, bytes, sent_at, delivered } = &line.mark {
                scene.messages.push(Message {
                    from: from.index(),
                    to: to.index(),
                    kind: kind.clone(),
                    category: Category::of(kind),
                    bytes: *bytes,
                    sent_ns: ns(*sent_at),
                    at_ns,
                    delivered: *delivered,
                });
                continue;
            }
            let Some(lane) = lane_of(line.actor).filter(|&l| l < lanes) else { continue };
            scene.track_down(lane, at_ns, &line.mark);
            if let Some((symbol, detail, label)) = describe(&line.mark) {
                scene.placed.push(Placed { lane, at_ns, symbol, detail, label });
            }
        }
        scene
    }

    fn track_down(&mut self, lane: usize, at_ns: u64, mark: &Mark) {
        let intervals = &mut self.down[lane];
        let open = intervals.last().is_some_and(|(_, end)| end.is_none());
        match mark {
            Mark::Crashed if !open => intervals.push((at_ns, None)),
            Mark::Restarted if open => {
                if let Some(last) = intervals.last_mut() {
                    last.1 = Some(at_ns);
                }
            }
            _ => {}
        }
    }

    /// Every instant at which something is drawn, sorted, without repeats, starting at zero.
    fn instants(&self) -> Vec<u64> {
        let mut instants = vec![0];
        instants.extend(self.messages.iter().flat_map(|m| [m.sent_ns, m.at_ns]));
        instants.extend(self.placed.iter().map(|p| p.at_ns));
        instants.extend(self.down.iter().flatten().flat_map(|&(start, end)| [Some(start), end]).flatten());
        instants.sort_unstable();
        instants.dedup();
        instants
    }

    /// The symbols grouped by lane, instant and kind, ordered by lane, instant and then
    /// [`Symbol`] order (so that a crash or restart sits on the lane, other symbols beside it).
    fn groups(&self) -> Vec<Group<'_>> {
        let mut groups: BTreeMap<(usize, u64, Symbol), Vec<&Placed>> = BTreeMap::new();
        for p in &self.placed {
            groups.entry((p.lane, p.at_ns, p.symbol)).or_default().push(p);
        }
        groups.into_iter().map(|((lane, at_ns, symbol), members)| Group { lane, at_ns, symbol, members }).collect()
    }

    fn delivered(&self) -> usize {
        self.messages.iter().filter(|m| m.delivered).count()
    }
}

/// The symbol, tooltip and (for writes) label of a mark, or `None` for marks not drawn as
/// symbols (receipts and applications show as arrows; unknown marks are skipped).
fn describe(mark: &Mark) -> Option<(Symbol, String, Option<String>)> {
    Some(match mark {
        Mark::Write { dot, key, hlc } => {
            (Symbol::Write, format!("write {dot} key {key}, HLC {hlc}"), Some(format!("{dot} {key}")))
        }
        Mark::Duplicate { from, dot } => (Symbol::Duplicate, format!("duplicate of {dot} from {from} dropped"), None),
        Mark::CausalWait { dot } => (Symbol::CausalWait, format!("{dot} waits for its dependencies"), None),
        Mark::Conflict { key, kept, discarded } => {
            (Symbol::Conflict, format!("LWW conflict on key {key}: kept {kept}, discarded {discarded}"), None)
        }
        Mark::Siblings { key, count } => (Symbol::Siblings, format!("key {key} holds {count} siblings"), None),
        Mark::SnapshotAdopted { from, vv } => {
            (Symbol::SnapshotAdopted, format!("snapshot from {from} adopted: {vv}"), None)
        }
        Mark::Voided { dot } => (Symbol::Voided, format!("{dot} voided (lost with the crash)"), None),
        Mark::Rejected { from, dot, far_future } => {
            let what = dot.map_or_else(|| "a message".to_owned(), |d| format!("entry {d}"));
            let why = if *far_future { " (timestamp too far in the future)" } else { "" };
            (Symbol::Rejected, format!("{what} from {from} rejected{why}"), None)
        }
        Mark::Rewired { live } => (Symbol::Rewire, format!("rewired, live {live}"), None),
        Mark::Crashed => (Symbol::Crash, "crashed: in-memory state lost".to_owned(), None),
        Mark::Restarted => (Symbol::Restart, "restarted with empty state".to_owned(), None),
        Mark::Rejoined => (Symbol::Rejoin, "fenced, rejoined from its peers".to_owned(), None),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// The time axis.

/// A piecewise linear map from time to `y`, through one knot per drawn instant.
struct TimeAxis {
    /// `(time in ns, y)`, strictly increasing in both.
    knots: Vec<(u64, f64)>,
    /// Gaps drawn at most half as tall as the axis's scale would draw them, shaded and labelled:
    /// `(from, to)` in ns.
    compressed: Vec<(u64, u64)>,
    /// Every gap drawn shorter than the axis's scale would (a superset of `compressed`): no
    /// regular tick falls inside one.
    capped: Vec<(u64, u64)>,
    /// Pixels per ns outside the capped gaps, on average (minimum gaps stretch bursts).
    ticked_px_per_ns: f64,
}

impl TimeAxis {
    /// The axis through `instants` (sorted, distinct), starting at `top`: the preferred scale
    /// if the run fits; else the longest gaps compressed (down to [`IDLE_GAP_PX_FLOOR`]); else a
    /// smaller scale; else the same share for every gap.
    fn build(instants: &[u64], top: f64, options: &SvgOptions) -> TimeAxis {
        let gaps: Vec<f64> = instants.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
        let room = (options.height_px_max - CHROME_PX).max(40.0);
        let low = options.event_gap_px_min;
        let fits = |s: f64, high: f64| gaps.iter().map(|&dt| (s * dt).clamp(low, high)).sum::<f64>() <= room;
        let preferred = options.px_per_ns();
        let high_max = options.idle_gap_px_max;
        let floor = IDLE_GAP_PX_FLOOR.clamp(low, high_max);
        let (px_per_ns, low, high) = if fits(preferred, high_max) {
            (preferred, low, high_max)
        } else if fits(preferred, floor) {
            (preferred, low, largest_where(floor, high_max, |high| fits(preferred, high)))
        } else if fits(0.0, floor) {
            (largest_where(0.0, preferred, |s| fits(s, floor)), low, floor)
        } else {
            // Even the least gap does not fit: every gap gets the same share.
            let share = room / gaps.len().max(1) as f64;
            (0.0, share, share)
        };
        let mut knots = Vec::with_capacity(instants.len());
        let (mut compressed, mut capped) = (Vec::new(), Vec::new());
        let (mut plain_px, mut plain_ns) = (0.0, 0.0);
        let mut y = top;
        for (i, &t) in instants.iter().enumerate() {
            if i > 0 {
                let dt = gaps[i - 1];
                let gap_px = (px_per_ns * dt).clamp(low, high);
                y += gap_px;
                if px_per_ns * dt > high + 0.05 && high > low {
                    capped.push((instants[i - 1], t));
                    if px_per_ns * dt >= COMPRESSED_RATIO_MIN * high {
                        compressed.push((instants[i - 1], t));
                    }
                } else {
                    plain_px += gap_px;
                    plain_ns += dt;
                }
            }
            knots.push((t, y));
        }
        if knots.is_empty() {
            knots.push((0, top));
        }
        let ticked_px_per_ns = if plain_ns > 0.0 { plain_px / plain_ns } else { px_per_ns };
        TimeAxis { knots, compressed, capped, ticked_px_per_ns }
    }

    /// Where time `t_ns` is drawn (clamped to the axis).
    fn y(&self, t_ns: u64) -> f64 {
        match self.knots.binary_search_by_key(&t_ns, |k| k.0) {
            Ok(i) => self.knots[i].1,
            Err(0) => self.knots[0].1,
            Err(i) if i >= self.knots.len() => self.knots[self.knots.len() - 1].1,
            Err(i) => {
                let ((t0, y0), (t1, y1)) = (self.knots[i - 1], self.knots[i]);
                y0 + (y1 - y0) * ((t_ns - t0) as f64 / (t1 - t0) as f64)
            }
        }
    }

    fn top(&self) -> f64 {
        self.knots[0].1
    }

    fn last_ns(&self) -> u64 {
        self.knots[self.knots.len() - 1].0
    }

    fn bottom(&self) -> f64 {
        self.knots[self.knots.len() - 1].1 + AXIS_TAIL_PX
    }

    /// The labelled ticks: zero, both ends of every compressed gap, and multiples of a round step
    /// about every 60 px outside capped gaps, each at least 16 px from the others.
    fn ticks(&self) -> Vec<(u64, f64)> {
        const SPACING_PX: f64 = 16.0;
        let span_ns = self.last_ns();
        let height = (self.bottom() - self.top()).max(1.0);
        let wanted_ns =
            if self.ticked_px_per_ns > 0.0 { 60.0 / self.ticked_px_per_ns } else { span_ns as f64 * 60.0 / height };
        let step_ns = round_step(wanted_ns).max(span_ns / TICKS_MAX).max(1);
        let priority = std::iter::once(0).chain(self.compressed.iter().flat_map(|&(from, to)| [to, from]));
        let regular = (0..=span_ns / step_ns)
            .map(|k| k * step_ns)
            .filter(|&t| !self.capped.iter().any(|&(from, to)| from < t && t < to));
        let mut kept: Vec<(u64, f64)> = Vec::new();
        for t in priority.chain(regular) {
            let y = self.y(t);
            if kept.iter().all(|&(_, k)| (k - y).abs() >= SPACING_PX) {
                kept.push((t, y));
            }
        }
        kept.sort_by_key(|&(t, _)| t);
        kept
    }
}

/// The largest `x` in `[lo, hi]` for which `ok(x)` holds, given that `ok(lo)` does and that `ok`
/// holds up to some point and not beyond it (bisection, 64 rounds).
fn largest_where(mut lo: f64, mut hi: f64, ok: impl Fn(f64) -> bool) -> f64 {
    if ok(hi) {
        return hi;
    }
    for _ in 0..64 {
        let mid = (lo + hi) / 2.0;
        if ok(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The smallest 1-2-5 step (in ns, at least 1 µs) that is at least `wanted_ns`.
fn round_step(wanted_ns: f64) -> u64 {
    let mut decade: u64 = 1_000;
    loop {
        for m in [1, 2, 5] {
            let step = decade.saturating_mul(m);
            if step as f64 >= wanted_ns || step == u64::MAX {
                return step;
            }
        }
        if decade >= u64::MAX / 10 {
            return u64::MAX;
        }
        decade *= 10;
    }
}

/// `1234.5 ms`: milliseconds with up to three decimals, trailing zeros trimmed.
fn fmt_ms(t_ns: u64) -> String {
    let micros = t_ns / 1_000;
    let (whole, frac) = (micros / 1_000, micros % 1_000);
    if frac == 0 {
        format!("{whole} ms")
    } else {
        let frac = format!("{frac:03}");
        format!("{whole}.{} ms", frac.trim_end_matches('0'))
    }
}

/// A coordinate, printed with one decimal.
struct Px(f64);

impl fmt::Display for Px {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.0.is_finite() { self.0 } else { 0.0 };
        // Never print `-0.0`: the same picture always gives the same bytes.
        let v = if v.abs() < 0.05 { 0.0 } else { v };
        write!(f, "{v:.1}")
    }
}

// ---------------------------------------------------------------------------------------------
// Layout and drawing.

/// Horizontal positions.
struct Layout {
    lanes: usize,
    axis_x: f64,
    first_lane_x: f64,
    lane_spacing: f64,
    lanes_right: f64,
    legend_x: f64,
    width: f64,
    height: f64,
}

const LEGEND_WIDTH_PX: f64 = 320.0;
const LEGEND_ROW_PX: f64 = 19.0;

impl Layout {
    fn new(lanes: usize, options: &SvgOptions, axis: &TimeAxis) -> Layout {
        let axis_x = 96.0;
        let first_lane_x = axis_x + 56.0;
        let last_lane_x = first_lane_x + lanes.saturating_sub(1) as f64 * options.lane_spacing_px;
        let lanes_right = last_lane_x + 60.0;
        let legend_x = lanes_right + 190.0;
        let width = legend_x + LEGEND_WIDTH_PX;
        let legend_bottom = AXIS_TOP_PX - 40.0 + legend_height();
        let height = (axis.bottom() + 44.0).max(legend_bottom + 20.0);
        Layout {
            lanes,
            axis_x,
            first_lane_x,
            lane_spacing: options.lane_spacing_px,
            lanes_right,
            legend_x,
            width,
            height,
        }
    }

    fn lane_x(&self, lane: usize) -> f64 {
        self.first_lane_x + lane as f64 * self.lane_spacing
    }

    /// The document element, the styles, the arrowheads and the heading.
    fn open(&self, out: &mut String, options: &SvgOptions, scene: &Scene) {
        let title = options.title.as_deref().unwrap_or("roundtable: space-time diagram");
        let title = escape_xml(title);
        let (w, h) = (Px(self.width), Px(self.height));
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(out, "<title>{title}</title>");
        out.push_str(
            "<style>.msg:hover{stroke-width:3;stroke-opacity:1}.lost:hover{stroke-width:2.5}.mark:hover{opacity:0.55}</style>\n",
        );
        out.push_str("<defs>\n");
        for category in Category::ALL {
            let (id, colour) = (category.class(), category.colour());
            let _ = writeln!(
                out,
                r#"<marker id="arrow-{id}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>"#
            );
        }
        out.push_str("</defs>\n");
        let _ = writeln!(out, r#"<rect class="background" x="0" y="0" width="{w}" height="{h}" fill="white"/>"#);
        let _ =
            writeln!(out, r#"<text class="heading" x="16" y="26" font-size="16" font-weight="bold">{title}</text>"#);
        let lost = scene.messages.len() - scene.delivered();
        let writes = scene.placed.iter().filter(|p| matches!(p.symbol, Symbol::Write)).count();
        let crashes = scene.placed.iter().filter(|p| matches!(p.symbol, Symbol::Crash)).count();
        let summary = format!(
            "{} leaders \u{b7} 0 to {} \u{b7} messages: {} delivered, {lost} lost \u{b7} writes: {writes} \u{b7} crashes: {crashes} \u{b7} time runs downwards; hover for details",
            scene.lanes,
            fmt_ms(scene.instants().last().copied().unwrap_or(0)),
            scene.delivered(),
        );
        let _ = writeln!(out, r##"<text class="summary" x="16" y="46" fill="#444">{}</text>"##, escape_xml(&summary));
        if scene.messages.is_empty() && scene.placed.is_empty() {
            let _ = writeln!(
                out,
                r##"<text class="no-events" x="{}" y="{}" fill="#777" font-style="italic">no events in this trace</text>"##,
                Px(self.first_lane_x),
                Px(AXIS_TOP_PX + 4.0)
            );
        }
    }
}

fn draw_time_axis(out: &mut String, layout: &Layout, axis: &TimeAxis) {
    let (top, bottom) = (axis.top(), axis.bottom());
    let right = layout.lanes_right;
    out.push_str("<g class=\"time-axis\">\n");
    for &(from, to) in &axis.compressed {
        let (y0, y1) = (axis.y(from), axis.y(to));
        let label = format!("{}, no events (compressed)", fmt_ms(to - from));
        let _ = writeln!(
            out,
            r##"<rect class="compressed" x="{}" y="{}" width="{}" height="{}" fill="#f1f1f1"><title>{}: {} to {}</title></rect>"##,
            Px(layout.axis_x),
            Px(y0 + 2.0),
            Px(right - layout.axis_x),
            Px(y1 - y0 - 4.0),
            escape_xml(&label),
            fmt_ms(from),
            fmt_ms(to),
        );
        let mid = (y0 + y1) / 2.0;
        let zig = format!("M{},{} l5,-4 l5,8 l5,-4", Px(layout.axis_x - 7.5), Px(mid));
        let _ = writeln!(out, r##"<path class="axis-break" d="{zig}" fill="none" stroke="#666" stroke-width="1.5"/>"##);
        let _ = writeln!(
            out,
            r##"<text class="compressed-label" x="{}" y="{}" fill="#777" font-style="italic" font-size="10">{}</text>"##,
            Px(right + 6.0),
            Px(mid + 3.5),
            escape_xml(&label)
        );
    }
    let _ = writeln!(
        out,
        r##"<line class="axis" x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#444"/>"##,
        Px(top),
        Px(bottom),
        x = Px(layout.axis_x)
    );
    for (t, y) in axis.ticks() {
        let _ = writeln!(
            out,
            r##"<line class="grid" x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#ececec"/><line class="tick" x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#444"/><text class="tick-label" x="{}" y="{}" text-anchor="end" fill="#333">{}</text>"##,
            Px(layout.axis_x),
            Px(right),
            Px(layout.axis_x - 5.0),
            Px(layout.axis_x),
            Px(layout.axis_x - 8.0),
            Px(y + 3.5),
            fmt_ms(t),
            y = Px(y),
        );
    }
    out.push_str("</g>\n");
}

fn draw_lanes(out: &mut String, layout: &Layout, axis: &TimeAxis, scene: &Scene) {
    let (top, bottom) = (axis.top(), axis.bottom());
    out.push_str("<g class=\"lanes\">\n");
    for lane in 0..layout.lanes {
        let x = layout.lane_x(lane);
        // The down intervals, as y ranges; the lane is drawn solid outside them.
        let down: Vec<(f64, f64, String)> = scene.down[lane]
            .iter()
            .map(|&(start, end)| {
                let end_label = end.map_or_else(|| "the end of the run".to_owned(), fmt_ms);
                (
                    axis.y(start),
                    end.map_or(bottom, |e| axis.y(e)),
                    format!("L{lane} down from {} to {end_label}", fmt_ms(start)),
                )
            })
            .collect();
        for (y0, y1, title) in &down {
            let _ = writeln!(
                out,
                r##"<rect class="down-band" x="{}" y="{}" width="22" height="{}" fill="#fde8e8"><title>{}</title></rect><line class="lane-down" x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#b0b0b0" stroke-width="2" stroke-dasharray="5,4"/>"##,
                Px(x - 11.0),
                Px(*y0),
                Px(y1 - y0),
                escape_xml(title),
                Px(*y0),
                Px(*y1),
                x = Px(x),
            );
        }
        let mut d = String::new();
        let mut from = top;
        for (y0, y1, _) in down.iter().chain(std::iter::once(&(bottom, bottom, String::new()))) {
            if *y0 > from {
                let _ = write!(d, "M{},{} V{} ", Px(x), Px(from), Px(*y0));
            }
            from = from.max(*y1);
        }
        let _ = writeln!(
            out,
            r##"<path class="lane" data-lane="{lane}" d="{}" stroke="#222" stroke-width="2" fill="none"><title>L{lane}</title></path>"##,
            d.trim_end()
        );
        for y in [AXIS_TOP_PX - 16.0, bottom + 22.0] {
            let _ = writeln!(
                out,
                r#"<text class="lane-label" x="{}" y="{}" text-anchor="middle" font-size="14" font-weight="bold">L{lane}</text>"#,
                Px(x),
                Px(y)
            );
        }
    }
    out.push_str("</g>\n");
}

fn draw_messages(out: &mut String, layout: &Layout, axis: &TimeAxis, scene: &Scene) {
    out.push_str("<g class=\"messages\">\n");
    // Digests first, so the replication arrows are drawn over them.
    let mut order: Vec<&Message> = scene.messages.iter().collect();
    order.sort_by_key(|m| m.category != Category::Digest);
    for m in order {
        let (x1, y1) = (layout.lane_x(m.from), axis.y(m.sent_ns));
        let (x2, y2) = (layout.lane_x(m.to), axis.y(m.at_ns));
        let (class, colour) = (m.category.class(), m.category.colour());
        if m.delivered {
            let title = format!(
                "{} L{}\u{2192}L{}, {} bytes: sent {}, delivered {} ({} in flight)",
                m.kind,
                m.from,
                m.to,
                m.bytes,
                fmt_ms(m.sent_ns),
                fmt_ms(m.at_ns),
                fmt_ms(m.at_ns.saturating_sub(m.sent_ns))
            );
            let _ = writeln!(
                out,
                r#"<line class="msg {class}" x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="{}" stroke-opacity="{}" marker-end="url(#arrow-{class})"><title>{}</title></line>"#,
                Px(x1),
                Px(y1),
                Px(x2),
                Px(y2),
                m.category.width(),
                m.category.opacity(),
                escape_xml(&title)
            );
        } else {
            let title = format!(
                "{} L{}\u{2192}L{}, {} bytes: sent {}, lost at {}",
                m.kind,
                m.from,
                m.to,
                m.bytes,
                fmt_ms(m.sent_ns),
                fmt_ms(m.at_ns)
            );
            // A short stub towards the receiver (as far as it got: nowhere), its name at the cross.
            let (dx, dy) = (x2 - x1, y2 - y1);
            let length = (dx * dx + dy * dy).sqrt().max(1.0);
            let part = (LOST_STUB_PX / length).min(0.5);
            let (ex, ey) = (x1 + dx * part, y1 + dy * part);
            let label_x = if dx < 0.0 { ex - 7.0 } else { ex + 7.0 };
            let anchor = if dx < 0.0 { "end" } else { "start" };
            let _ = writeln!(
                out,
                r#"<g class="lost {class}"><title>{}</title><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="1.5" stroke-dasharray="4,3"/><path d="M{},{} l8,8 m0,-8 l-8,8" stroke="{colour}" stroke-width="1.8" fill="none"/><text x="{}" y="{}" text-anchor="{anchor}" font-size="8" fill="{colour}">L{}</text></g>"#,
                escape_xml(&title),
                Px(x1),
                Px(y1),
                Px(ex),
                Px(ey),
                Px(ex - 4.0),
                Px(ey - 4.0),
                Px(label_x),
                Px(ey + 3.0),
                m.to,
            );
        }
    }
    out.push_str("</g>\n");
}

fn draw_marks(out: &mut String, layout: &Layout, axis: &TimeAxis, scene: &Scene, options: &SvgOptions) {
    out.push_str("<g class=\"marks\">\n");
    // Different symbols at the same lane and instant stand side by side, right of the lane.
    // The right edge of what is drawn so far at each lane and instant.
    let mut right: BTreeMap<(usize, u64), f64> = BTreeMap::new();
    for group in scene.groups() {
        let count = group.members.len();
        let half = group.symbol.half_width_px();
        let key = (group.lane, group.at_ns);
        let x = right.get(&key).map_or(layout.lane_x(group.lane), |edge| edge + 3.0 + half);
        let y = axis.y(group.at_ns);
        let count_text = format!("\u{d7}{count}");
        let count_px = if count > 1 { 2.0 + 5.5 * count_text.chars().count() as f64 } else { 0.0 };
        right.insert(key, x + half + count_px);
        let attrs = format!(r#"data-lane="{}" data-count="{count}""#, group.lane);
        let class = format!("mark {}", group.symbol.class());
        group.symbol.draw(out, x, y, &class, &attrs, Some(&group.title()));
        if count > 1 {
            let _ = writeln!(
                out,
                r##"<text class="mark-count" x="{}" y="{}" font-size="9" fill="#333">{count_text}</text>"##,
                Px(x + half + 1.5),
                Px(y + 3.0)
            );
        }
        let labels: Vec<&str> = group.members.iter().filter_map(|p| p.label.as_deref()).collect();
        if options.write_labels && !labels.is_empty() {
            let _ = writeln!(
                out,
                r##"<text class="write-label" x="{}" y="{}" text-anchor="end" font-size="9" fill="#222" stroke="white" stroke-width="3" stroke-opacity="0.85" paint-order="stroke">{}</text>"##,
                Px(layout.lane_x(group.lane) - 8.0),
                Px(y + 3.0),
                escape_xml(&labels.join(", "))
            );
        }
    }
    out.push_str("</g>\n");
}

impl Group<'_> {
    /// The tooltip: where and when, then each mark's detail (at most [`GROUP_DETAILS_MAX`]).
    fn title(&self) -> String {
        let mut title = format!("L{} at {}: ", self.lane, fmt_ms(self.at_ns));
        if let [only] = self.members.as_slice() {
            title.push_str(&only.detail);
            return title;
        }
        let _ = write!(title, "{} \u{d7} {}", self.members.len(), self.symbol.legend());
        for p in self.members.iter().take(GROUP_DETAILS_MAX) {
            let _ = write!(title, "\n{}", p.detail);
        }
        if self.members.len() > GROUP_DETAILS_MAX {
            let _ = write!(title, "\n\u{2026} and {} more", self.members.len() - GROUP_DETAILS_MAX);
        }
        title
    }
}

// ---------------------------------------------------------------------------------------------
// Colours, symbols and the legend.

/// A message kind, for its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Replicate,
    CatchUp,
    Digest,
    Snapshot,
    Other,
}

impl Category {
    const ALL: [Category; 5] =
        [Category::Replicate, Category::CatchUp, Category::Digest, Category::Snapshot, Category::Other];

    fn of(kind: &str) -> Category {
        match kind {
            "replicate" => Category::Replicate,
            "catch-up" => Category::CatchUp,
            "digest" => Category::Digest,
            "snapshot" => Category::Snapshot,
            _ => Category::Other,
        }
    }

    fn class(self) -> &'static str {
        match self {
            Category::Replicate => "replicate",
            Category::CatchUp => "catch-up",
            Category::Digest => "digest",
            Category::Snapshot => "snapshot",
            Category::Other => "other",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Category::Replicate => "#1f6fb4",
            Category::CatchUp => "#12a4b8",
            Category::Digest => "#8a8a8a",
            Category::Snapshot => "#2e9d3a",
            Category::Other => "#8e5cc2",
        }
    }

    fn width(self) -> &'static str {
        match self {
            Category::Digest => "1",
            _ => "1.6",
        }
    }

    fn opacity(self) -> &'static str {
        match self {
            Category::Digest => "0.55",
            _ => "0.8",
        }
    }

    fn legend(self) -> &'static str {
        match self {
            Category::Replicate => "replicate: new entries",
            Category::CatchUp => "catch-up: entries a peer lacked",
            Category::Digest => "digest: anti-entropy version vector",
            Category::Snapshot => "snapshot chunk",
            Category::Other => "other message",
        }
    }
}

/// A symbol on a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Symbol {
    // Declared in drawing order at one lane and instant: the leader's lifecycle on the lane.
    Crash,
    Restart,
    Rejoin,
    Write,
    Duplicate,
    CausalWait,
    Conflict,
    Siblings,
    SnapshotAdopted,
    Voided,
    Rejected,
    Rewire,
}

impl Symbol {
    const ALL: [Symbol; 12] = [
        Symbol::Write,
        Symbol::Duplicate,
        Symbol::CausalWait,
        Symbol::Conflict,
        Symbol::Siblings,
        Symbol::SnapshotAdopted,
        Symbol::Voided,
        Symbol::Rejected,
        Symbol::Crash,
        Symbol::Restart,
        Symbol::Rejoin,
        Symbol::Rewire,
    ];

    fn class(self) -> &'static str {
        match self {
            Symbol::Write => "write",
            Symbol::Duplicate => "duplicate",
            Symbol::CausalWait => "causal-wait",
            Symbol::Conflict => "conflict",
            Symbol::Siblings => "siblings",
            Symbol::SnapshotAdopted => "snapshot-adopted",
            Symbol::Voided => "voided",
            Symbol::Rejected => "rejected",
            Symbol::Crash => "crash",
            Symbol::Restart => "restart",
            Symbol::Rejoin => "rejoin",
            Symbol::Rewire => "rewire",
        }
    }

    fn legend(self) -> &'static str {
        match self {
            Symbol::Write => "write accepted (dot, key)",
            Symbol::Duplicate => "duplicate copy dropped",
            Symbol::CausalWait => "causal wait: dependencies missing",
            Symbol::Conflict => "last-write-wins conflict decided",
            Symbol::Siblings => "siblings kept for a key",
            Symbol::SnapshotAdopted => "snapshot adopted",
            Symbol::Voided => "sequence number voided after restart",
            Symbol::Rejected => "entry or message rejected",
            Symbol::Crash => "crash: in-memory state lost",
            Symbol::Restart => "restart with empty state",
            Symbol::Rejoin => "fenced leader rejoined from peers",
            Symbol::Rewire => "rewired (live set in the tooltip)",
        }
    }

    /// Half the symbol's width, in pixels.
    fn half_width_px(self) -> f64 {
        match self {
            Symbol::Restart => 10.0,
            Symbol::Crash => 7.0,
            Symbol::Rejoin | Symbol::Rewire => 6.5,
            _ => 5.5,
        }
    }

    /// The element's name and geometry, centred on `(x, y)`.
    fn shape(self, x: f64, y: f64) -> (&'static str, String) {
        let (cx, cy) = (Px(x), Px(y));
        let path = |d: String, style: &str| ("path", format!(r#"d="{d}" {style}"#));
        match self {
            Symbol::Write => ("circle", format!(r##"cx="{cx}" cy="{cy}" r="4.5" fill="#111""##)),
            Symbol::Duplicate => {
                ("circle", format!(r##"cx="{cx}" cy="{cy}" r="3.5" fill="white" stroke="#777" stroke-width="1.5""##))
            }
            Symbol::CausalWait => path(
                format!("M{},{} h9 l-9,11 h9 z", Px(x - 4.5), Px(y - 5.5)),
                r##"fill="#f2b705" stroke="#9a7400" stroke-width="0.8""##,
            ),
            Symbol::Conflict => path(
                format!("M{cx},{} l5.5,5.5 l-5.5,5.5 l-5.5,-5.5 z", Px(y - 5.5)),
                r##"fill="#f07f1a" stroke="#9c4a00" stroke-width="0.8""##,
            ),
            Symbol::Siblings => path(
                format!("M{cx},{} l5.5,5.5 l-5.5,5.5 l-5.5,-5.5 z", Px(y - 5.5)),
                r##"fill="white" stroke="#c2185b" stroke-width="2""##,
            ),
            Symbol::SnapshotAdopted => {
                path(format!("M{},{} h9 v9 h-9 z", Px(x - 4.5), Px(y - 4.5)), r##"fill="#2e9d3a""##)
            }
            Symbol::Voided => path(
                format!("M{},{} h8 v8 h-8 z", Px(x - 4.0), Px(y - 4.0)),
                r##"fill="white" stroke="#666" stroke-width="1.5""##,
            ),
            Symbol::Rejected => {
                path(format!("M{},{} h11 l-5.5,9.5 z", Px(x - 5.5), Px(y - 4.5)), r##"fill="#8c564b""##)
            }
            Symbol::Crash => path(
                format!("M{},{} l14,14 m0,-14 l-14,14", Px(x - 7.0), Px(y - 7.0)),
                r##"stroke="#c62828" stroke-width="3.5" stroke-linecap="round" fill="none""##,
            ),
            Symbol::Restart => path(
                format!("M{},{cy} h20", Px(x - 10.0)),
                r##"stroke="#2e9d3a" stroke-width="4.5" stroke-linecap="round" fill="none""##,
            ),
            Symbol::Rejoin => {
                ("circle", format!(r##"cx="{cx}" cy="{cy}" r="6" fill="none" stroke="#1565c0" stroke-width="2.5""##))
            }
            Symbol::Rewire => {
                path(format!("M{},{cy} h12", Px(x - 6.0)), r##"stroke="#555" stroke-width="1.5" fill="none""##)
            }
        }
    }

    fn draw(self, out: &mut String, x: f64, y: f64, class: &str, attrs: &str, title: Option<&str>) {
        let (tag, geometry) = self.shape(x, y);
        let _ = match title {
            Some(title) => {
                writeln!(
                    out,
                    r#"<{tag} class="{class}" {attrs} {geometry}><title>{}</title></{tag}>"#,
                    escape_xml(title)
                )
            }
            None => writeln!(out, r#"<{tag} class="{class}" {attrs} {geometry}/>"#),
        };
    }
}

/// How many rows the legend has.
fn legend_rows() -> usize {
    // Three headings, the message colours, the lost message, the symbols, the count, and the
    // lane states.
    3 + Category::ALL.len() + 1 + Symbol::ALL.len() + 1 + 3
}

fn legend_height() -> f64 {
    legend_rows() as f64 * LEGEND_ROW_PX + 30.0
}

fn draw_legend(out: &mut String, layout: &Layout) {
    let (x, top) = (layout.legend_x, AXIS_TOP_PX - 40.0);
    let _ = writeln!(
        out,
        r##"<g class="legend"><rect class="legend-frame" x="{}" y="{}" width="{}" height="{}" fill="#fafafa" stroke="#ccc"/>"##,
        Px(x),
        Px(top),
        Px(LEGEND_WIDTH_PX - 12.0),
        Px(legend_height())
    );
    let (sx, tx) = (x + 24.0, x + 48.0);
    let mut y = top + 22.0;
    let row = |out: &mut String, y: &mut f64, text: &str, bold: bool| {
        let weight = if bold { r#" font-weight="bold""# } else { "" };
        let x = if bold { x + 10.0 } else { tx };
        let _ = writeln!(
            out,
            r#"<text class="legend-text" x="{}" y="{}"{weight}>{}</text>"#,
            Px(x),
            Px(*y + 4.0),
            escape_xml(text)
        );
        *y += LEGEND_ROW_PX;
    };
    row(out, &mut y, "Messages (arrow: send to delivery)", true);
    for category in Category::ALL {
        let (class, colour) = (category.class(), category.colour());
        let _ = writeln!(
            out,
            r#"<line class="legend-msg {class}" x1="{}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="1.6" marker-end="url(#arrow-{class})"/>"#,
            Px(sx - 14.0),
            Px(y - 4.0),
            Px(sx + 14.0),
            Px(y + 4.0)
        );
        row(out, &mut y, category.legend(), false);
    }
    let _ = writeln!(
        out,
        r##"<g class="legend-lost"><line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#1f6fb4" stroke-width="1.5" stroke-dasharray="4,3"/><path d="M{},{} l8,8 m0,-8 l-8,8" stroke="#1f6fb4" stroke-width="1.8" fill="none"/></g>"##,
        Px(sx - 16.0),
        Px(sx + 6.0),
        Px(sx + 2.0),
        Px(y - 4.0),
        y = Px(y)
    );
    row(out, &mut y, "lost: dropped, cut off or receiver down", false);
    row(out, &mut y, "Events on a lane", true);
    for symbol in Symbol::ALL {
        symbol.draw(out, sx, y, &format!("legend-symbol {}", symbol.class()), "", None);
        row(out, &mut y, symbol.legend(), false);
    }
    let _ = writeln!(
        out,
        r##"<circle class="legend-symbol" cx="{}" cy="{}" r="3.5" fill="white" stroke="#777" stroke-width="1.5"/><text class="legend-count" x="{}" y="{}" font-size="9" fill="#333">&#215;3</text>"##,
        Px(sx - 6.0),
        Px(y),
        Px(sx + 1.0),
        Px(y + 3.0)
    );
    row(out, &mut y, "3 such events at one instant (hover: list)", false);
    row(out, &mut y, "Lanes and time", true);
    let _ = writeln!(
        out,
        r##"<line class="legend-lane" x1="{sx}" y1="{}" x2="{sx}" y2="{}" stroke="#222" stroke-width="2"/>"##,
        Px(y - 7.0),
        Px(y + 7.0),
        sx = Px(sx)
    );
    row(out, &mut y, "leader up", false);
    let _ = writeln!(
        out,
        r##"<rect class="legend-down" x="{}" y="{}" width="22" height="16" fill="#fde8e8"/><line class="legend-lane-down" x1="{sx}" y1="{}" x2="{sx}" y2="{}" stroke="#b0b0b0" stroke-width="2" stroke-dasharray="5,4"/>"##,
        Px(sx - 11.0),
        Px(y - 8.0),
        Px(y - 8.0),
        Px(y + 8.0),
        sx = Px(sx)
    );
    row(out, &mut y, "leader down (crash to restart)", false);
    let _ = writeln!(
        out,
        r##"<rect class="legend-compressed" x="{}" y="{}" width="28" height="14" fill="#f1f1f1"/><path d="M{},{} l5,-4 l5,8 l5,-4" fill="none" stroke="#666" stroke-width="1.5"/>"##,
        Px(sx - 14.0),
        Px(y - 7.0),
        Px(sx - 7.5),
        Px(y)
    );
    row(out, &mut y, "idle stretch, axis compressed", false);
    out.push_str("</g>\n");
}

#[cfg(test)]
mod tests {
    use roundtable_runtime::{Dot, LeaderId, Seq};

    use super::*;

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(escape_xml("plain"), "plain");
        assert!(matches!(escape_xml("plain"), Cow::Borrowed(_)));
        assert_eq!(escape_xml(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;");
        assert_eq!(escape_xml("bell\u{7}tab\t"), "bell\u{FFFD}tab\t");
    }

    #[test]
    fn escapes_the_title() {
        let options = SvgOptions { title: Some("a < b & \"c\"".into()), ..SvgOptions::default() };
        let svg = render_svg(&Trace::default(), &options);
        assert!(svg.contains("a &lt; b &amp; &quot;c&quot;"));
        assert!(!svg.contains("a < b"));
    }

    #[test]
    fn an_empty_trace_gives_a_complete_document() {
        let svg = render_svg(&Trace::default(), &SvgOptions::default());
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(svg.ends_with("</svg>\n"));
        assert!(!svg.contains("class=\"lane\""));
        assert!(svg.contains("class=\"legend\""));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        let with_lanes = render_svg(&Trace::default(), &SvgOptions { leaders: Some(3), ..SvgOptions::default() });
        roxmltree::Document::parse(&with_lanes).expect("well-formed XML");
        assert_eq!(with_lanes.matches("class=\"lane\"").count(), 3);
    }

    fn id(i: usize) -> LeaderId {
        LeaderId::new(i).expect("in range")
    }

    fn line(at_ms: u64, actor: Actor, mark: Mark) -> MarkLine {
        MarkLine { at: Duration::from_millis(at_ms), actor, mark }
    }

    fn message(from: usize, to: usize, kind: &str, sent_ms: u64, delivered: bool) -> Mark {
        let sent_at = Duration::from_millis(sent_ms);
        Mark::Message { from: id(from), to: id(to), kind: kind.into(), bytes: 64, sent_at, delivered }
    }

    /// A hand-made trace: odd message kinds and keys, a crash without restart, a lane known
    /// only from a message, three conflicts at one instant, and a long idle stretch.
    fn hand_made() -> Vec<MarkLine> {
        let (l0, l1) = (Actor::Leader(id(0)), Actor::Leader(id(1)));
        let dot = |i: usize, seq: u64| Dot::new(id(i), Seq(seq));
        let conflict = |seq: u64| Mark::Conflict { key: "\"a<b&c\"".into(), kept: dot(0, seq), discarded: dot(1, seq) };
        let marks = vec![
            line(1, l1, message(0, 1, "replicate", 0, true)),
            line(2, Actor::Network, message(1, 4, "<gossip & more>", 2, false)),
            line(3, l0, message(4, 0, "route", 1, true)),
            line(5, l0, conflict(1)),
            line(5, l0, conflict(2)),
            line(5, l0, conflict(3)),
            line(6, l1, Mark::Crashed),
            line(9_000, l0, message(0, 1, "digest", 9_000, false)),
        ];
        marks
    }

    #[test]
    fn a_hand_made_trace_draws_every_fact_once() {
        let svg = render_marks_svg(&hand_made(), &SvgOptions::default());
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let with_all = |classes: &[&str]| {
            let has = |n: &roxmltree::Node<'_, '_>, class: &str| {
                n.attribute("class").is_some_and(|c| c.split(' ').any(|t| t == class))
            };
            doc.descendants().filter(|n| classes.iter().all(|class| has(n, class))).count()
        };
        let with = |class: &str| with_all(&[class]);
        assert_eq!(with("lane"), 5, "L4 appears only in messages and still gets a lane");
        assert_eq!(with("msg"), 2);
        assert_eq!(with_all(&["msg", "other"]), 1, "unknown kinds are drawn as other");
        assert_eq!(with_all(&["lost", "other"]), 1);
        assert_eq!(with("lost"), 2);
        assert_eq!(with_all(&["mark", "conflict"]), 1, "three conflicts at one instant make one symbol");
        assert!(svg.contains(r#"data-count="3""#));
        assert!(svg.contains("&lt;gossip &amp; more&gt;"));
        assert!(svg.contains("&quot;a&lt;b&amp;c&quot;"));
        assert_eq!(with("down-band"), 1, "L1 stays down until the end");
        assert_eq!(with("compressed"), 1, "the idle stretch before 9 s is compressed");
        let tick_labels: Vec<&str> =
            doc.descendants().filter(|n| n.attribute("class") == Some("tick-label")).filter_map(|n| n.text()).collect();
        assert!(tick_labels.contains(&"9000 ms"), "the end of a compressed stretch is labelled: {tick_labels:?}");
    }

    #[test]
    fn formats_milliseconds_without_trailing_zeros() {
        assert_eq!(fmt_ms(0), "0 ms");
        assert_eq!(fmt_ms(550_000_000), "550 ms");
        assert_eq!(fmt_ms(617_500_000), "617.5 ms");
        assert_eq!(fmt_ms(1_234), "0.001 ms");
    }

    #[test]
    fn round_steps_follow_one_two_five() {
        assert_eq!(round_step(0.0), 1_000);
        assert_eq!(round_step(1_500.0), 2_000);
        assert_eq!(round_step(3_000_000.0), 5_000_000);
        assert_eq!(round_step(7e9), 10_000_000_000);
    }

    #[test]
    fn the_time_axis_is_monotone_and_fits() {
        let options = SvgOptions::default().sanitized();
        // 2 000 instants (too many for the least gap) spread over 60 s with long idle stretches.
        let mut instants: Vec<u64> = (0..2_000).map(|i| i * 1_000_000 + (i % 7) * 10_000_000_000).collect();
        instants.sort_unstable();
        instants.dedup();
        let axis = TimeAxis::build(&instants, AXIS_TOP_PX, &options);
        assert!(axis.knots.windows(2).all(|w| w[0].1 < w[1].1));
        assert!(axis.bottom() <= options.height_px_max);
        let ticks = axis.ticks();
        assert!(ticks.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
    }
}
