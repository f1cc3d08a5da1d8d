//! The simulation's clients and fault schedule at work: one operation or fault applied to the
//! running cluster, and recorded in the trace as a typed [`ClientEvent`].

use std::time::Duration;

use roundtable_actors::trace::{Actor as Who, ClientEvent, ReadOutcome, TraceSink};
use roundtable_actors::{Cluster, ClusterError, Delete, Get, GetSiblings, Put, SimEpoch, Write, WriteConcern};
use roundtable_runtime::resolution::Update;
use roundtable_runtime::LeaderId;

use crate::run::AckedWrite;
use crate::workload::{ms, ClientOp, FaultEvent};

/// Performs one client operation at `leader`, records it, and returns the write it got
/// acknowledged, if any.
pub(crate) async fn client_op(
    cluster: &Cluster,
    sink: &TraceSink,
    epoch: &SimEpoch,
    id: LeaderId,
    op: ClientOp,
    concern: Option<WriteConcern>,
) -> Result<Option<AckedWrite>, ClusterError> {
    let addr = cluster.leader(id)?;
    let crdt = match &op {
        ClientOp::Update { update, .. } => match update.as_ref() {
            Update::Crdt(u) => Some(u.clone()),
            _ => None,
        },
        _ => None,
    };
    let (key, value, label, result) = match op {
        ClientOp::Put { key, value } => {
            let mut put = Put::new(key.clone(), value.clone());
            put.concern = concern;
            let r = addr.send(put).await?;
            let label = format!("put {key:?}={value:?}");
            (key, Some(value), label, r)
        }
        ClientOp::Delete { key } => {
            let r = match concern {
                None => addr.send(Delete::new(key.clone())).await?,
                Some(c) => addr.send(Write { key: key.clone(), update: Update::Delete, concern: Some(c) }).await?,
            };
            let label = format!("delete {key:?}");
            (key, None, label, r)
        }
        ClientOp::Update { key, update } => {
            let label = format!("update {key:?} {}", describe(&update));
            let r = addr.send(Write { key: key.clone(), update: *update, concern }).await?;
            (key, None, label, r)
        }
        ClientOp::Get { key } => {
            let read = addr.send(Get::new(key.clone())).await?;
            let read = match read {
                Ok(Some(r)) => r.value.map_or(ReadOutcome::Deleted, ReadOutcome::Value),
                Ok(None) => ReadOutcome::Nothing,
                Err(e) => ReadOutcome::Refused(e.to_string()),
            };
            sink.record(Who::Client, ClientEvent::Read { leader: id, key, read });
            return Ok(None);
        }
        ClientOp::ResolveSiblings { key, value } => {
            let read = addr.send(GetSiblings::new(key.clone())).await?;
            let Ok(Some(read)) = read else {
                sink.record(Who::Client, ClientEvent::NoSiblings { leader: id, key });
                return Ok(None);
            };
            let dots = read.siblings.iter().map(|(dot, _)| *dot).collect();
            sink.record(Who::Client, ClientEvent::ReadSiblings { leader: id, key: key.clone(), dots });
            let mut write = Write::with_context(key.clone(), Some(value.clone().into_bytes()), read.context)
                .map_err(|e| ClusterError::Settings(e.to_string()))?;
            write.concern = concern;
            let r = addr.send(write).await?;
            let label = format!("put {key:?}={value:?} over the siblings read");
            (key, Some(value), label, r)
        }
        ClientOp::PutAfterSeeing { key, value, seen_key, seen_value } => {
            let deadline = epoch.elapsed() + Duration::from_secs(10);
            loop {
                let seen = addr.send(Get::new(seen_key.clone())).await?;
                let shows =
                    seen.ok().flatten().and_then(|r| r.value).is_some_and(|v| v.as_bytes() == seen_value.as_bytes());
                if shows {
                    break;
                }
                if epoch.elapsed() >= deadline {
                    sink.record(Who::Client, ClientEvent::NeverShowed { leader: id, key: seen_key, value: seen_value });
                    return Ok(None);
                }
                tokio::time::sleep(ms(1)).await;
            }
            sink.record(Who::Client, ClientEvent::Shows { leader: id, key: seen_key, value: seen_value });
            let mut put = Put::new(key.clone(), value.clone());
            put.concern = concern;
            let r = addr.send(put).await?;
            let label = format!("put {key:?}={value:?}");
            (key, Some(value), label, r)
        }
    };
    match result {
        Ok(receipt) => {
            sink.record(Who::Client, ClientEvent::Wrote { leader: id, op: label, outcome: Ok(receipt.dot) });
            Ok(Some(AckedWrite {
                leader: id,
                at: epoch.elapsed(),
                dot: receipt.dot,
                hlc: receipt.hlc,
                key,
                value,
                crdt,
            }))
        }
        Err(e) => {
            sink.record(Who::Client, ClientEvent::Wrote { leader: id, op: label, outcome: Err(e.to_string()) });
            Ok(None)
        }
    }
}

/// A short, stable description of an update for the trace.
fn describe(update: &Update) -> String {
    use roundtable_runtime::resolution::CrdtUpdate;
    let text = |v: &roundtable_runtime::Value| v.as_str().map_or_else(|| format!("{v:?}"), |s| format!("{s:?}"));
    match update {
        Update::Put(v) => format!("put {}", text(v)),
        Update::Delete => "delete".into(),
        Update::PutWithContext { value: Some(v), .. } => format!("put {} with context", text(v)),
        Update::PutWithContext { value: None, .. } => "delete with context".into(),
        Update::Crdt(CrdtUpdate::Increment(n)) => format!("+{n}"),
        Update::Crdt(CrdtUpdate::Decrement(n)) => format!("-{n}"),
        Update::Crdt(CrdtUpdate::Add(v)) => format!("add {}", text(v)),
        Update::Crdt(CrdtUpdate::Remove(v)) => format!("remove {}", text(v)),
        Update::Crdt(CrdtUpdate::Set { value, .. }) => format!("set {}", text(value)),
        Update::Crdt(CrdtUpdate::MapIncrement { field, amount }) => format!("{} +{amount}", text(field)),
        Update::Crdt(CrdtUpdate::MapDecrement { field, amount }) => format!("{} -{amount}", text(field)),
        Update::Crdt(CrdtUpdate::MapRemove { field }) => format!("remove field {}", text(field)),
    }
}

/// Records `fault` (resolved: its leader by id, so that it shows as before) and applies it.
pub(crate) fn apply_fault(cluster: &Cluster, sink: &TraceSink, fault: FaultEvent) -> Result<(), ClusterError> {
    sink.record(Who::Client, ClientEvent::Fault { fault: fault.to_string() });
    match fault {
        FaultEvent::Crash(l) => cluster.crash(l)?,
        FaultEvent::Restart(l) => cluster.restart(l)?,
        FaultEvent::Isolate(l) => cluster.isolate(l)?,
        FaultEvent::Heal(l) => cluster.heal(l)?,
        FaultEvent::Partition(a, b) => cluster.partition(a, b)?,
        FaultEvent::HealAll => cluster.heal_all()?,
        FaultEvent::LoseDisk(l) => cluster.lose_disk(l)?,
    }
    Ok(())
}
