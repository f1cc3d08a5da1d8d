//! The space-time diagram of a simulated run: a well-formed SVG document with one lane per
//! leader, one arrow per delivered message, the crash on the hub's lane and a legend, rendered
//! byte for byte the same every time.

use roundtable_actors::Mark;
use roundtable_runtime::{LeaderId, Topology};
use roundtable_sim::svg::{render_svg, SvgOptions};
use roundtable_sim::{ms, NetworkModel, SimRun, Simulation};

const LEADERS: usize = 4;

/// Four leaders around hub L0 on a lossy WAN; the hub crashes at 40 ms and restarts at 600 ms.
fn hub_crash_run() -> SimRun {
    Simulation::new(7)
        .leaders(LEADERS)
        .topology(Topology::Star { hub: LeaderId::new(0).expect("leader 0 exists") })
        .network(NetworkModel::wan().drop_rate(0.1))
        .workload(|w| w.puts_per_leader(3))
        .crash_at(ms(40), "L0")
        .restart_at(ms(600), "L0")
        .run()
}

fn has_class(node: &roxmltree::Node<'_, '_>, class: &str) -> bool {
    node.attribute("class").is_some_and(|c| c.split_whitespace().any(|token| token == class))
}

fn count_class(doc: &roxmltree::Document<'_>, class: &str) -> usize {
    doc.descendants().filter(|n| has_class(n, class)).count()
}

#[test]
fn hub_crash_diagram_is_well_formed_and_complete() {
    let run = hub_crash_run();
    let trace = run.trace();
    let options = SvgOptions { title: Some("star around L0, hub crashes & restarts".into()), ..SvgOptions::default() };
    let svg = render_svg(trace, &options);
    if let Ok(dir) = std::env::var("ROUNDTABLE_SVG_DIR") {
        std::fs::write(std::path::Path::new(&dir).join("hub.svg"), &svg).expect("write the diagram");
    }

    let doc = roxmltree::Document::parse(&svg).expect("the diagram is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.tag_name().namespace(), Some("http://www.w3.org/2000/svg"));

    let lanes: Vec<_> = doc.descendants().filter(|n| has_class(n, "lane")).collect();
    assert_eq!(lanes.len(), LEADERS, "one lane element per leader");
    for (i, lane) in lanes.iter().enumerate() {
        assert_eq!(lane.attribute("data-lane"), Some(i.to_string().as_str()));
    }

    let delivered = trace.marks().iter().filter(|m| matches!(m.mark, Mark::Message { delivered: true, .. })).count();
    let lost = trace.marks().iter().filter(|m| matches!(m.mark, Mark::Message { delivered: false, .. })).count();
    assert!(delivered > 0 && lost > 0, "the run delivers and loses messages ({delivered}, {lost})");
    assert_eq!(count_class(&doc, "msg"), delivered, "one arrow per delivered message");
    assert_eq!(count_class(&doc, "lost"), lost, "one stub per lost message");
    for arrow in doc.descendants().filter(|n| has_class(n, "msg")) {
        assert!(arrow.attribute("marker-end").is_some_and(|m| m.starts_with("url(#arrow-")));
        assert!(arrow.children().any(|c| c.has_tag_name("title")), "every arrow has a tooltip");
    }

    let crash_on_hub = doc
        .descendants()
        .any(|n| has_class(&n, "mark") && has_class(&n, "crash") && n.attribute("data-lane") == Some("0"));
    assert!(crash_on_hub, "a crash symbol on lane L0");
    assert!(doc.descendants().any(|n| has_class(&n, "mark") && has_class(&n, "restart")));
    assert!(doc.descendants().any(|n| has_class(&n, "down-band")), "L0's lane shows it down");
    let writes = trace.marks().iter().filter(|m| matches!(m.mark, Mark::Write { .. })).count();
    let write_symbols: usize = doc
        .descendants()
        .filter(|n| has_class(n, "mark") && has_class(n, "write"))
        .map(|n| n.attribute("data-count").and_then(|c| c.parse::<usize>().ok()).expect("a count"))
        .sum();
    assert_eq!(write_symbols, writes, "every write is drawn (symbols at one instant carry a count)");

    let legend = doc.descendants().find(|n| has_class(n, "legend")).expect("a legend");
    assert!(legend.descendants().filter(|n| n.is_text()).any(|t| t.text().is_some_and(|s| s.contains("crash"))));

    assert_eq!(render_svg(trace, &options), svg, "rendering is deterministic");
}

#[test]
fn the_same_seed_draws_the_same_picture() {
    let options = SvgOptions::default();
    assert_eq!(render_svg(hub_crash_run().trace(), &options), render_svg(hub_crash_run().trace(), &options));
}

#[test]
fn a_busy_nine_leader_run_stays_within_the_height_cap() {
    let run = Simulation::new(11)
        .leaders(9)
        .topology(Topology::AllToAll { relay: false })
        .network(NetworkModel::wan().drop_rate(0.05))
        .workload(|w| w.puts_per_leader(6))
        .crash_at(ms(25), "L4")
        .restart_at(ms(300), "L4")
        .run();
    let options = SvgOptions::default();
    let svg = render_svg(run.trace(), &options);
    if let Ok(dir) = std::env::var("ROUNDTABLE_SVG_DIR") {
        std::fs::write(std::path::Path::new(&dir).join("busy.svg"), &svg).expect("write the diagram");
    }
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let height: f64 = doc.root_element().attribute("height").and_then(|h| h.parse().ok()).expect("a height");
    assert!(height <= options.height_px_max, "height {height} within {}", options.height_px_max);
    assert_eq!(count_class(&doc, "lane"), 9);
    let delivered =
        run.trace().marks().iter().filter(|m| matches!(m.mark, Mark::Message { delivered: true, .. })).count();
    assert_eq!(count_class(&doc, "msg"), delivered);
}
