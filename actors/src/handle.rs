//! A host's handle on one leader: async calls that return [`crate::Error`], and change
//! notifications as a bounded stream. The raw actix messages stay available through
//! [`LeaderHandle::send`] for hosts that want them.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix::dev::{MessageResponse, Request, ToEnvelope};
use actix::{Actor, Addr, Handler, Message};
use roundtable_runtime::resolution::{CrdtState, Update};
use roundtable_runtime::siblings::SiblingRead;
use roundtable_runtime::{LeaderId, ReadValue, WriteReceipt};

use crate::error::Error;
use crate::leader::Leader;
use crate::messages::{
    Changed, Delete, Get, GetCrdt, GetProgress, GetSiblings, Put, PutBatch, SubscribeChannel, Subscriber, Write,
};

/// How many notifications a [`Subscription`] holds before further ones are counted as missed.
pub const SUBSCRIPTION_CAPACITY: usize = 1024;

/// One leader of a [`crate::Cluster`], as a host application uses it. Cheap to clone.
///
/// ```no_run
/// use roundtable_actors::Cluster;
///
/// # async fn demo() -> Result<(), roundtable_actors::Error> {
/// let cluster = Cluster::builder().leaders(["us-east", "eu-west"]).start().await?;
/// let east = cluster.leader("us-east")?;
/// let receipt = east.put("user:42", "Ada").await?;
/// println!("acknowledged as {} at {}", receipt.dot, receipt.hlc);
/// cluster.settled().await?;
/// let read = cluster.leader("eu-west")?.get("user:42").await?;
/// assert_eq!(read.and_then(|r| r.value).and_then(|v| v.as_str().map(str::to_owned)), Some("Ada".into()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LeaderHandle {
    id: LeaderId,
    name: String,
    addr: Addr<Leader>,
}

impl std::fmt::Debug for LeaderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderHandle").field("id", &self.id).field("name", &self.name).finish_non_exhaustive()
    }
}

impl LeaderHandle {
    pub(crate) fn new(id: LeaderId, name: String, addr: Addr<Leader>) -> Self {
        LeaderHandle { id, name, addr }
    }

    /// Its id.
    #[must_use]
    pub fn id(&self) -> LeaderId {
        self.id
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The actor's address, for the raw actix messages.
    #[must_use]
    pub fn addr(&self) -> &Addr<Leader> {
        &self.addr
    }

    /// Sends a raw actix message (`Put`, `Get`, `Write`, …) and returns actix's request, as
    /// `Addr::send` does: `.await??` gives the answer.
    pub fn send<M>(&self, msg: M) -> Request<Leader, M>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        Leader: Handler<M>,
        <Leader as Actor>::Context: ToEnvelope<Leader, M>,
    {
        self.addr.send(msg)
    }

    /// Sends a raw actix message without waiting for its answer.
    pub fn do_send<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        Leader: Handler<M>,
        <Leader as Actor>::Context: ToEnvelope<Leader, M>,
    {
        self.addr.do_send(msg);
    }

    async fn ask<M, T>(&self, msg: M) -> Result<T, Error>
    where
        M: Message<Result = Result<T, crate::LeaderError>> + Send + 'static,
        T: Send + 'static,
        Result<T, crate::LeaderError>: MessageResponse<Leader, M> + Send,
        Leader: Handler<M>,
    {
        Ok(self.addr.send(msg).await??)
    }

    /// Puts `value` under `key` (last-write-wins, or a home-leader key, routed to its home).
    /// Answers once the write is applied here (at its home, when routed).
    pub async fn put(&self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Result<WriteReceipt, Error> {
        self.ask(Put::new(key, value)).await
    }

    /// Deletes `key` (a tombstone that replicates like a put).
    pub async fn delete(&self, key: impl Into<String>) -> Result<WriteReceipt, Error> {
        self.ask(Delete::new(key)).await
    }

    /// Any write: a CRDT update, a siblings write with a context, a write with a write
    /// concern (see [`Write`]).
    pub async fn write(&self, write: Write) -> Result<WriteReceipt, Error> {
        self.ask(write).await
    }

    /// Any update of `key` (see [`Update`]).
    pub async fn update(&self, key: impl Into<String>, update: Update) -> Result<WriteReceipt, Error> {
        self.ask(Write { key: key.into(), update, concern: None }).await
    }

    /// Runs `work` against this leader's state in one turn of its mailbox (see [`Atomically`]).
    ///
    /// # Errors
    /// [`Error`] when the leader is down or stopped.
    pub async fn atomically<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut crate::Txn<'_>) -> R + Send + 'static,
    ) -> Result<R, Error> {
        self.ask(crate::Atomically::new(work)).await
    }

    /// How many leaders are known to hold `dot`, once at least `wanted` do or `timeout` has
    /// passed (asking the peers for acknowledgements every 20 ms meanwhile): what a Redis `WAIT`
    /// answers.
    ///
    /// # Errors
    /// [`Error`] when the leader is stopped.
    pub async fn held_by(
        &self,
        dot: roundtable_runtime::Dot,
        wanted: usize,
        timeout: Duration,
    ) -> Result<usize, Error> {
        Ok(crate::leader::wait_held(self.addr.clone(), dot, wanted, timeout).await.0)
    }

    /// Many puts in one message; each is answered on its own (in order). At most
    /// [`crate::PUT_BATCH_MAX`]; puts are not routed to a home leader.
    pub async fn put_batch<I, K, V>(&self, puts: I) -> Result<Vec<Result<WriteReceipt, Error>>, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<Vec<u8>>,
    {
        let batch = PutBatch::new(puts.into_iter().map(|(k, v)| (k.into(), v.into())))?;
        let results = self.addr.send(batch).await?;
        Ok(results.into_iter().map(|r| r.map_err(Error::from)).collect())
    }

    /// The value of a last-write-wins or home-leader key here (`None`: never written). A key of
    /// a siblings or CRDT keyspace is an error naming the read to use.
    pub async fn get(&self, key: impl Into<String>) -> Result<Option<ReadValue>, Error> {
        self.ask(Get::new(key)).await
    }

    /// The siblings of a key of a siblings keyspace, with the context to write back with.
    pub async fn get_siblings(&self, key: impl Into<String>) -> Result<Option<SiblingRead>, Error> {
        self.ask(GetSiblings::new(key)).await
    }

    /// The state of a key of a CRDT keyspace.
    pub async fn get_crdt(&self, key: impl Into<String>) -> Result<Option<CrdtState>, Error> {
        self.ask(GetCrdt::new(key)).await
    }

    /// Whether this leader accepts writes now (it is up, not recovering, not fenced).
    pub async fn is_writable(&self) -> Result<bool, Error> {
        Ok(self.addr.send(GetProgress).await?.writable)
    }

    /// Waits until this leader accepts writes (checking every 10 ms), at most `limit`: after a
    /// restart it refuses writes until it has settled its recovery.
    pub async fn writable_within(&self, limit: Duration) -> Result<(), Error> {
        if crate::clock::poll_until(limit, || self.is_writable()).await? {
            Ok(())
        } else {
            Err(crate::LeaderError::NotWritable { leader: self.name.clone(), waited: limit }.into())
        }
    }

    /// The health of this leader's clock (synchronised, fenced, stale, unsynchronised) and its
    /// measured offset from the time reference in nanoseconds (`None` before the first sample).
    pub async fn clock_health(&self) -> Result<(roundtable_runtime::clock::ClockHealth, Option<i64>), Error> {
        let health = self.addr.send(crate::ClockStatus).await?;
        health.ok_or_else(|| crate::LeaderError::Down(self.name.clone()).into())
    }

    /// Waits until everything this leader applied so far is on its disk (see [`crate::SyncDisk`]):
    /// one wait for many writes sent without a durable concern.
    pub async fn synced(&self, timeout: Duration) -> Result<(), Error> {
        self.ask(crate::SyncDisk { timeout }).await
    }

    /// Every change applied at this leader to a key starting with `prefix` (empty: every key),
    /// as a bounded stream: no actor to write. At most [`SUBSCRIPTION_CAPACITY`] notifications
    /// wait; beyond that they are counted ([`Subscription::missed`]), never queued without bound.
    /// Dropping the subscription ends it.
    pub async fn subscribe(&self, prefix: impl Into<String>) -> Result<Subscription, Error> {
        let (sender, receiver) = tokio::sync::mpsc::channel(SUBSCRIPTION_CAPACITY);
        let missed = Arc::new(AtomicU64::new(0));
        let subscriber = Subscriber::Channel { sender, missed: missed.clone() };
        self.ask(SubscribeChannel { prefix: prefix.into(), subscriber }).await?;
        Ok(Subscription { receiver, missed })
    }
}

/// Change notifications of one leader (see [`LeaderHandle::subscribe`]): a bounded stream.
#[derive(Debug)]
pub struct Subscription {
    receiver: tokio::sync::mpsc::Receiver<Changed>,
    missed: Arc<AtomicU64>,
}

impl Subscription {
    /// The next notification; `None` when the leader's actor is gone.
    pub async fn next(&mut self) -> Option<Changed> {
        self.receiver.recv().await
    }

    /// The next notification if one is waiting.
    pub fn try_next(&mut self) -> Option<Changed> {
        self.receiver.try_recv().ok()
    }

    /// Notifications dropped because [`SUBSCRIPTION_CAPACITY`] were already waiting.
    #[must_use]
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }
}

impl futures_core::Stream for Subscription {
    type Item = Changed;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Changed>> {
        self.receiver.poll_recv(cx)
    }
}
