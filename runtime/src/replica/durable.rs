//! A durable replica: what it asks its shell to persist ([`Record`], [`Image`]) and how it
//! resumes from them ([`Replica::resume`]).
//!
//! With [`ReplicaConfig::durable`] on, every change to what the replica holds comes out as an
//! [`Effect::Persist`]: an entry applied (a client write, a replicated entry, a void) or a
//! snapshot merged. The records, replayed in order over the last [`Image`] (a checkpoint the
//! shell takes with [`Replica::image`] whenever it likes), rebuild the stores, the version
//! vector and the log of entries since the checkpoint. The hybrid logical clock resumes past
//! every timestamp they hold.
//!
//! **The shell's rule** (what makes a resumed leader safe): *no message of an input leaves
//! before every record of that input is durable*. A write's entry is sent before it is applied
//! (it is forwarded first), so the shell holds the input's sends until its records are synced.
//! Then no peer ever holds a write — or an acknowledgement, or a digest — that the disk does not,
//! so a resumed leader never issues a dot twice and never has to ask its peers what it wrote: it
//! accepts writes at once, whoever is down. What a crash loses is only what no peer saw: entries
//! applied here but not yet synced come back from their origins by anti-entropy, and client writes
//! not yet synced were never acknowledged under [`crate::replica::ReplicaConfig::durable`]'s
//! `Durable` concern (the shell's business) and never left the process.
//!
//! What is not persisted, on purpose: the causal buffer (its entries were not applied; their
//! senders still hold them), the seen-by sets of the log (a resumed leader assumes only the
//! origin and itself saw each entry, and sends a little more than needed), the quarantine, the
//! list of voided dots and the counters.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::causality::VersionVector;
use crate::clock::HlcTimestamp;
use crate::entry::SharedEntry;
use crate::log::CausalBuffer;
use crate::resolution::CrdtState;
use crate::store::SnapshotChunk;
use crate::{LeaderId, LeaderSet, Topology};

use super::{ConfigError, Effect, Replica, ReplicaConfig};

/// One change to persist, in the order the effects come. Encode it with [`Record::encode`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// An entry was applied here: a client write, a replicated entry or a void.
    Applied(SharedEntry),
    /// A snapshot from a peer was merged whole.
    Snapshot {
        /// The writes it reflects.
        vv: VersionVector,
        /// Its chunks.
        chunks: Vec<SnapshotChunk>,
    },
    /// The replica starts over with nothing ([`Replica::restarted`], or a rejoin after a fence):
    /// everything persisted before is void, and until [`Record::Recovered`] it does not know its
    /// own last sequence number. A shell may drop every earlier record and image.
    Recovering,
    /// The recovery that the last [`Record::Recovering`] began is over.
    Recovered,
}

/// A checkpoint of a durable replica: what the records up to it built. A shell stores the newest
/// one and the records after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The leader it belongs to.
    pub leader: LeaderId,
    /// The cluster's members then.
    pub members: LeaderSet,
    /// The writes applied.
    pub applied: VersionVector,
    /// The last timestamp the leader's clock had issued or observed.
    pub hlc: HlcTimestamp,
    /// The stores, as snapshot chunks (ids, indexes and counts unused).
    pub chunks: Vec<SnapshotChunk>,
    /// Taken while the leader was recovering (it did not know its own last sequence number).
    pub recovering: bool,
}

/// Why a replica could not resume from what its disk holds. Nothing is started: the shell
/// reports it and refuses to run rather than starting empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// The settings are wrong (as for [`Replica::new`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The image belongs to another leader or another cluster.
    #[error("the stored image is of leader {found} in cluster {members}, not of this leader {expected}")]
    WrongLeader {
        /// The leader resuming.
        expected: LeaderId,
        /// The leader the image names.
        found: LeaderId,
        /// The members it names.
        members: LeaderSet,
    },
    /// A record or the image could not be decoded.
    #[error("stored {what} {index} is corrupt: {reason}")]
    Corrupt {
        /// `"record"` or `"image"`.
        what: &'static str,
        /// The record's position (0 for the image).
        index: u64,
        /// What the decoder said.
        reason: alloc::string::String,
    },
    /// A record cannot follow what came before it (an entry whose dependencies were never
    /// applied, a chunk for a key of another keyspace…): the records are not this replica's own.
    #[error("stored record {index} does not follow the records before it: {why}")]
    Inconsistent {
        /// The record's position among those replayed.
        index: u64,
        /// What is wrong.
        why: &'static str,
    },
}

/// A record or image could not be encoded (postcard refused it); nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode a {what} for the disk: {reason}")]
pub struct EncodeError {
    /// `"record"` or `"image"`.
    pub what: &'static str,
    /// What postcard said.
    pub reason: alloc::string::String,
}

impl Record {
    /// The record as bytes (postcard).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        postcard::to_allocvec(self).map_err(|e| EncodeError { what: "record", reason: alloc::format!("{e}") })
    }

    /// A record from bytes written by [`Record::encode`]; `index` names it in the error.
    pub fn decode(bytes: &[u8], index: u64) -> Result<Record, ResumeError> {
        decode(bytes, "record", index)
    }
}

impl Image {
    /// The image as bytes (postcard).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        postcard::to_allocvec(self).map_err(|e| EncodeError { what: "image", reason: alloc::format!("{e}") })
    }

    /// An image from bytes written by [`Image::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Image, ResumeError> {
        decode(bytes, "image", 0)
    }
}

/// Postcard bytes back into `T`; a failure is [`ResumeError::Corrupt`] naming `what` and `index`.
fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &'static str, index: u64) -> Result<T, ResumeError> {
    postcard::from_bytes(bytes).map_err(|e| ResumeError::Corrupt { what, index, reason: alloc::format!("{e}") })
}

impl Replica {
    /// Whether this replica emits [`Effect::Persist`] (see [`ReplicaConfig::durable`]).
    #[must_use]
    pub fn is_durable(&self) -> bool {
        self.config.durable
    }

    /// A checkpoint of everything applied here. Store it together with the position of the last
    /// record it covers: a resume replays only the records after it.
    #[must_use]
    pub fn image(&self) -> Image {
        Image {
            leader: self.id,
            members: self.members,
            applied: self.applied.clone(),
            hlc: self.clock.last(),
            chunks: self.stores.snapshot_chunks(&self.applied, usize::MAX, usize::MAX),
            recovering: self.recovery.is_some(),
        }
    }

    /// A durable leader restarting from its disk: the last `image` (if one was taken) and the
    /// `records` persisted after it, in order. Unlike [`Replica::restarted`] it knows its own
    /// last sequence number, so it accepts writes as soon as it is started, whoever is down,
    /// and never issues a dot twice. It starts a new life (peers learn that its causal buffer
    /// was lost) and, like a restarted leader, holds every peer sealed until that peer says it
    /// is not recovering. `config.durable` is turned on.
    pub fn resume<I>(
        id: LeaderId,
        members: LeaderSet,
        topology: Topology,
        mut config: ReplicaConfig,
        image: Option<Image>,
        records: I,
    ) -> Result<Self, ResumeError>
    where
        I: IntoIterator<Item = Result<Record, ResumeError>>,
    {
        config.durable = true;
        let mut replica = Replica::new(id, members, topology, config)?;
        replica.sealed = members.without(id);
        let mut hlc = None;
        if let Some(image) = image {
            if image.leader != id || !image.members.is_subset(members) {
                return Err(ResumeError::WrongLeader { expected: id, found: image.leader, members: image.members });
            }
            if image.recovering {
                let (topology, config) = (replica.topology.clone(), replica.config.clone());
                replica = Replica::restarted(id, members, topology, config)?;
            }
            replica.replay_snapshot(0, &image.applied, image.chunks)?;
            hlc = Some(image.hlc);
        }
        for (index, record) in (1u64..).zip(records) {
            match record? {
                Record::Applied(entry) => {
                    if replica.applied.contains(entry.dot) {
                        // Already in the image or merged by a snapshot record: nothing to redo.
                        continue;
                    }
                    if !CausalBuffer::is_deliverable(&entry, &replica.applied)
                        || !replica.members.contains(entry.dot.origin)
                    {
                        return Err(ResumeError::Inconsistent { index, why: "entry not deliverable" });
                    }
                    hlc = hlc.max(Some(entry.hlc));
                    let seen = LeaderSet::single(id).with(entry.dot.origin);
                    replica.stores.apply(&entry);
                    replica.applied.set(entry.dot.origin, entry.dot.seq);
                    if replica.log.append(entry, seen, replica.input_at).is_some() {
                        replica.metrics.log_truncated_forced += 1;
                    }
                }
                Record::Snapshot { vv, chunks } => {
                    let newest = chunks.iter().filter_map(newest_stamp).max();
                    hlc = hlc.max(newest);
                    replica.replay_snapshot(index, &vv, chunks)?;
                }
                Record::Recovering => {
                    // Everything before is void; the new life recovers from its peers.
                    let (topology, config) = (replica.topology.clone(), replica.config.clone());
                    replica = Replica::restarted(id, members, topology, config)?;
                    hlc = None;
                }
                Record::Recovered => {
                    if replica.recovery.take().is_none() {
                        return Err(ResumeError::Inconsistent { index, why: "recovered without recovering" });
                    }
                }
            }
        }
        // Crashed while recovering (after `Recovering`, with no `Recovered` since), it still
        // does not know its own last sequence number: it recovers again, keeping what it
        // replayed, and its peers fill in the rest. Otherwise it resumes where it stopped.
        replica.resumed = true;
        if let Some(last) = hlc {
            replica.clock.resume_after(last);
        }
        replica.effects.clear();
        Ok(replica)
    }

    /// Merges a stored snapshot (or the image's stores) while resuming.
    fn replay_snapshot(
        &mut self,
        index: u64,
        vv: &VersionVector,
        chunks: Vec<SnapshotChunk>,
    ) -> Result<(), ResumeError> {
        if !vv.leaders().is_subset(self.members) {
            return Err(ResumeError::Inconsistent { index, why: "version vector names a non-member" });
        }
        for chunk in chunks {
            self.stores.check_chunk(&chunk).map_err(|why| ResumeError::Inconsistent { index, why })?;
            let _ = self.stores.merge_chunk(chunk, vv, &self.applied, false);
        }
        let mut floor = VersionVector::new();
        for (origin, seq) in vv.iter().filter(|(origin, seq)| *seq > self.applied.get(*origin)) {
            floor.set(origin, seq);
        }
        self.log.raise_floor(&floor);
        self.applied.merge(vv);
        Ok(())
    }

    /// With `durable` on: asks the shell to persist `record`.
    pub(super) fn persist(&mut self, record: impl FnOnce() -> Record) {
        if self.config.durable {
            self.effects.push(Effect::Persist(record()));
        }
    }
}

/// The newest timestamp a chunk holds (registers and last-write-wins CRDT registers).
fn newest_stamp(chunk: &SnapshotChunk) -> Option<HlcTimestamp> {
    let registers = chunk.registers.iter().map(|(_, r)| r.hlc);
    let crdts = chunk.crdts.iter().filter_map(|(_, state)| match state {
        CrdtState::LwwRegister(r) => r.timestamp(),
        _ => None,
    });
    registers.chain(crdts).max()
}
