//! Conflict avoidance: every key has a home leader, and every write to it is made there.
//!
//! Three leaders share a keyspace whose resolution is `Resolution::HomeLeader`. The home of a key
//! is chosen by rendezvous hashing over the live leaders, so all leaders agree on it without
//! talking. A client that writes at another leader is routed to the home; writes to one key are
//! therefore sequential and last-write-wins never has to decide anything. When the home dies the
//! supervisor declares it dead, the live set shrinks, and the hashing names a new home: writes
//! follow it. This runs in the deterministic simulator, so the trace below is the same on every
//! run. Run it with `cargo run --example home_leader`.

use roundtable::actors::trace::{ClientEvent, Event, LeaderEvent, NetworkEvent, SupervisorEvent};
use roundtable::prelude::*;
use roundtable::topologies::rendezvous_home;
use roundtable_sim::{ms, NetworkModel, Simulation};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let home = rendezvous_home(b"account:7", LeaderSet::first(3)).ok_or("no home")?;
    let others: Vec<LeaderId> = LeaderId::range(3).filter(|id| *id != home).collect();
    println!("account:7 lives at {home}; {} and {} route their writes there\n", others[0], others[1]);

    let run = Simulation::new(5)
        .leaders(3)
        .network(NetworkModel::wan())
        .resolution(Resolution::HomeLeader)
        .workload(|w| {
            // All three write the same key at the same moment — a conflict anywhere else.
            let w = LeaderId::range(3).fold(w, |w, id| w.put(ms(0), id, "account:7", &format!("balance set at {id}")));
            // After the home has died, the survivors keep writing.
            w.put(ms(1_500), others[0], "account:7", "after failover (1)").put(
                ms(1_600),
                others[1],
                "account:7",
                "after failover (2)",
            )
        })
        .crash_at(ms(300), home)
        .run();

    for record in &run.trace().records {
        let interesting = match &record.event {
            Event::Replica(e) => {
                matches!(
                    e,
                    TraceEvent::RoutedToHome { .. } | TraceEvent::RoutedHere { .. } | TraceEvent::LwwDiscarded { .. }
                )
            }
            Event::Network(e) => matches!(e, NetworkEvent::RouteLost { .. }),
            Event::Supervisor(e) => matches!(e, SupervisorEvent::DeclaredDead { .. } | SupervisorEvent::Rewired { .. }),
            Event::Leader(e) => matches!(e, LeaderEvent::Crashed),
            Event::Client(ClientEvent::Wrote { op, .. }) => op.contains("account:7\"="),
            _ => false,
        };
        if interesting {
            println!("{record}");
        }
    }
    println!("\nfinal state:");
    for state in run.states() {
        let value = state.store.iter().find(|(k, _)| k.as_str() == "account:7").and_then(|(_, r)| {
            r.value.as_ref().map(|v| format!("{} (written as {})", String::from_utf8_lossy(v.as_bytes()), r.dot))
        });
        let status = if state.up { "" } else { " (down)" };
        println!("  {}{status}: {}", state.name, value.unwrap_or_else(|| "-".into()));
    }

    run.check_converged()?;
    if run.trace().render().contains(" lww ") {
        return Err("a home-leader keyspace made a last-write-wins decision".into());
    }
    println!("\n{} writes acknowledged, no conflict decided anywhere", run.acked().len());
    Ok(())
}
