//! Several reads and writes at one leader in one turn of its mailbox: [`Atomically`].
//!
//! A front end that checks before it writes (a Redis `SET … NX`, a type check before an
//! `SADD`) needs the check and the write to see the same state, and a pipeline of many small
//! requests is much cheaper as one message than as one round trip each. `Atomically` carries a
//! closure that the leader runs against a [`Txn`]: it reads this leader's state, and writes
//! through the same path as [`crate::Write`] (clocks, fencing, backpressure and the disk are
//! checked for each write). Nothing else happens at the leader while it runs. It is atomic at
//! this leader only: other leaders accept writes of their own meanwhile, and replication
//! decides between them as the keyspace's resolution says.
//!
//! ```no_run
//! # async fn demo(leader: &roundtable_actors::LeaderHandle) -> Result<(), roundtable_actors::Error> {
//! use roundtable_actors::Update;
//! use roundtable_runtime::Value;
//!
//! // Put "v" under "k" unless this leader holds a value for it already.
//! let wrote = leader
//!     .atomically(|txn| -> Result<bool, roundtable_actors::LeaderError> {
//!         if txn.get("k")?.is_some_and(|read| read.value.is_some()) {
//!             return Ok(false);
//!         }
//!         txn.write("k", Update::Put(Value::new(b"v".to_vec())?))?;
//!         Ok(true)
//!     })
//!     .await??;
//! # let _ = wrote; Ok(()) }
//! ```
//!
//! Writes are not routed to a home leader: a key whose home is another leader is refused
//! (`NotHome`), as in a [`crate::PutBatch`]. The closure runs on the leader's thread: it should
//! be short, and must not block.

use actix::{Context, Handler, Message};
use roundtable_runtime::resolution::{CrdtState, Update};
use roundtable_runtime::siblings::SiblingRead;
use roundtable_runtime::{Key, ReadValue, Replica, WriteReceipt};

use crate::leader::Leader;
use crate::LeaderError;

/// Runs a closure against a leader's state in one turn of its mailbox (see the module docs).
/// Answers the closure's result, or [`LeaderError::Down`] when the leader is down.
pub struct Atomically<R> {
    work: Box<dyn FnOnce(&mut Txn<'_>) -> R + Send>,
}

impl<R> Atomically<R> {
    /// The message running `work`.
    pub fn new(work: impl FnOnce(&mut Txn<'_>) -> R + Send + 'static) -> Self {
        Atomically { work: Box::new(work) }
    }
}

impl<R> std::fmt::Debug for Atomically<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Atomically(..)")
    }
}

impl<R: Send + 'static> Message for Atomically<R> {
    type Result = Result<R, LeaderError>;
}

/// A leader's state while an [`Atomically`] runs.
pub struct Txn<'a> {
    leader: &'a mut Leader,
    wrote: bool,
    /// The physical time of the turn's writes, read at the first.
    now: Option<roundtable_runtime::WallTime>,
}

impl Txn<'_> {
    /// This leader's replica, read-only: anything its public methods tell (lag per peer, the
    /// quarantine, key history, key counts).
    #[must_use]
    pub fn replica(&self) -> &Replica {
        self.leader.replica_ref().expect("a transaction runs only while the leader is up")
    }

    /// Reads `key` of a last-write-wins or home-leader keyspace, as [`crate::Get`] does.
    ///
    /// # Errors
    /// An invalid key, or a key of another resolution.
    pub fn get(&self, key: &str) -> Result<Option<ReadValue>, LeaderError> {
        Ok(self.replica().read_register(&Key::new(key)?)?)
    }

    /// Reads `key` of a CRDT keyspace, as [`crate::GetCrdt`] does.
    ///
    /// # Errors
    /// An invalid key.
    pub fn crdt(&self, key: &str) -> Result<Option<&CrdtState>, LeaderError> {
        Ok(self.replica().read_crdt(&Key::new(key)?))
    }

    /// Reads `key` of a siblings keyspace, as [`crate::GetSiblings`] does.
    ///
    /// # Errors
    /// An invalid key.
    pub fn siblings(&self, key: &str) -> Result<Option<SiblingRead>, LeaderError> {
        Ok(self.replica().read_siblings(&Key::new(key)?))
    }

    /// Writes `update` to `key` here, as [`crate::Write`] without a write concern does (not
    /// routed); the effects leave when the closure returns.
    ///
    /// # Errors
    /// Whatever refuses a write here: a fenced clock, backpressure, a failed disk, a bad value.
    pub fn write(&mut self, key: &str, update: Update) -> Result<WriteReceipt, LeaderError> {
        let key = Key::new(key).map_err(LeaderError::from)?;
        self.write_key(key, update)
    }

    /// [`Txn::write`] of a key already checked.
    ///
    /// # Errors
    /// As [`Txn::write`].
    pub fn write_key(&mut self, key: Key, update: Update) -> Result<WriteReceipt, LeaderError> {
        self.wrote = true;
        let now = *self.now.get_or_insert_with(|| self.leader.now());
        self.leader.write_here_at(key, update, now)
    }
}

impl<R: Send + 'static> Handler<Atomically<R>> for Leader {
    type Result = Result<R, LeaderError>;
    fn handle(&mut self, msg: Atomically<R>, _: &mut Context<Self>) -> Self::Result {
        if self.replica_ref().is_none() {
            return Err(self.down());
        }
        let mut txn = Txn { leader: self, wrote: false, now: None };
        let result = (msg.work)(&mut txn);
        if txn.wrote {
            self.perform();
        }
        Ok(result)
    }
}
