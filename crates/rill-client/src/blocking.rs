//! Blocking wrappers for code without an async runtime (mini-redis's `blocking_client` shape).
//!
//! Each wrapper owns the async client and a tokio runtime, and every method is the async
//! method run to completion with `Runtime::block_on`. The async client is the only
//! implementation; these add no behaviour of their own.
//!
//! - [`Producer`]: [`send`](Producer::send) blocks until the record is delivered (or fails),
//!   then returns where it landed.
//! - [`Admin`]: every method of [`crate::Admin`].
//! - [`Consumer`] and its [`PartitionConsumer`]s: one partition's records; `next` blocks
//!   until the next record.
//! - [`GroupConsumer`]: a consumer-group member; `next` blocks through joins and rebalances.
//!
//! # Not inside a runtime
//! **Do not call these from async code**, nor from a thread already inside a tokio runtime:
//! `block_on` panics there ("Cannot start a runtime from within a runtime"), and dropping a
//! wrapper there panics too, because it drops a runtime. From async code use the async
//! clients; from a runtime worker thread that must block, use `tokio::task::spawn_blocking`.
//!
//! # Background work
//! [`Producer`] and [`Admin`] use a `current_thread` runtime, which runs tasks only while some
//! thread is inside `block_on`. The producer's batching task and each connection's reader and
//! writer therefore make progress during calls, not between them. That is enough there
//! because every call waits for its own outcome ([`Producer::send`] returns only once the
//! record is delivered), but it means an idle wrapper holds its connections open without
//! reading them. Calls from several threads at once are allowed: one of them drives the
//! runtime while the others wait.
//!
//! The consumers cannot work that way. A [`PartitionConsumer`] fetches ahead in a background
//! task, and a [`GroupConsumer`] sends heartbeats from one: if those ran only inside `next`,
//! a caller that spends longer than the session timeout on a record between two calls would
//! be thrown out of its group, and fetch-ahead would stop whenever the caller is busy. So
//! [`Consumer`] and [`GroupConsumer`] each run a **multi-thread runtime with one worker
//! thread**: their tasks keep running between calls (heartbeats go out, the next fetch is
//! already in flight), at the cost of one extra thread per wrapper. Driving the runtime
//! inside `next` alone was rejected for that reason. A [`Consumer`] shares its runtime with
//! the [`PartitionConsumer`]s it starts, which keep it alive after the consumer is dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::admin::{
    AdminConfig, AlterConfigOp, CommittedOffset, ConfigEntry, ConfigResource, CreatedTopic,
    GroupDescription, GroupListing, ListedOffset, NewTopic, OffsetSpec, PartitionLag,
    TopicDescription, TopicListing,
};
use crate::cluster::Cluster;
use crate::consumer::{ConsumerConfig, ConsumerRecord, Offset};
use crate::error::{ClientError, Result};
use crate::group::{GroupConfig, GroupMetadata};
use crate::producer::{ProducerConfig, ProducerRecord, RecordMetadata};

/// A `current_thread` runtime with I/O and timers.
fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ClientError::Io {
            addr: "a new tokio runtime".to_owned(),
            source: Arc::new(source),
        })
}

/// A multi-thread runtime with one worker thread, I/O and timers: the consumers' background
/// tasks (fetch-ahead, heartbeats) run on it between calls too (see the [module docs](self)).
fn worker_runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("rill-blocking-consumer")
        .enable_all()
        .build()
        .map_err(|source| ClientError::Io {
            addr: "a new tokio runtime".to_owned(),
            source: Arc::new(source),
        })
}

/// `Some(Err(Timeout))` when `next` gives nothing within `timeout`.
fn timed_out(what: String, after: Duration) -> Option<Result<ConsumerRecord>> {
    Some(Err(ClientError::Timeout { what, after }))
}

/// The blocking producer: [`crate::Producer`] on its own `current_thread` runtime.
///
/// Must not be used from inside an async runtime (see the [module docs](self)).
///
/// ```no_run
/// use rill_client::{ClientConfig, ProducerConfig, ProducerRecord};
/// use rill_client::blocking::Producer;
///
/// # fn main() -> Result<(), rill_client::ClientError> {
/// let producer = Producer::new(ProducerConfig::new(ClientConfig::new(["127.0.0.1:9092"])))?;
/// let meta = producer.send(ProducerRecord::new("events").value("hello"))?;
/// println!("partition {} offset {}", meta.partition, meta.offset);
/// producer.close();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Producer {
    // Dropped before the runtime its tasks live on.
    inner: crate::Producer,
    rt: Runtime,
}

impl Producer {
    /// Starts a producer and its runtime. Nothing is connected until the first send.
    ///
    /// ```no_run
    /// # use rill_client::{ClientConfig, ProducerConfig};
    /// # fn main() -> Result<(), rill_client::ClientError> {
    /// let producer = rill_client::blocking::Producer::new(ProducerConfig::new(
    ///     ClientConfig::new(["127.0.0.1:9092"]),
    /// ))?;
    /// # drop(producer);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(config: ProducerConfig) -> Result<Self> {
        let rt = runtime()?;
        // The producer spawns its batching task on the runtime it is created in.
        let inner = {
            let _entered = rt.enter();
            crate::Producer::new(config)?
        };
        Ok(Self { inner, rt })
    }

    /// Sends one record and blocks until its outcome: where it landed, or why it failed
    /// (after retries, within `delivery_timeout`).
    ///
    /// ```no_run
    /// # fn _demo(producer: &rill_client::blocking::Producer) -> Result<(), rill_client::ClientError> {
    /// use rill_client::ProducerRecord;
    /// let meta = producer.send(ProducerRecord::new("events").key("k").value("v"))?;
    /// println!("offset {}", meta.offset);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.rt.block_on(self.inner.send(record))
    }

    /// Blocks until every record handed over so far has its outcome. (With only this
    /// wrapper's `send`, which waits for each record, there is never anything pending; it
    /// matters when other threads send at the same time.)
    ///
    /// ```no_run
    /// # fn _demo(producer: &rill_client::blocking::Producer) {
    /// producer.flush();
    /// # }
    /// ```
    pub fn flush(&self) {
        self.rt.block_on(self.inner.flush());
    }

    /// Flushes, stops the producer's task and shuts the runtime down.
    ///
    /// ```no_run
    /// # fn _demo(producer: rill_client::blocking::Producer) {
    /// producer.close();
    /// # }
    /// ```
    pub fn close(self) {
        self.rt.block_on(self.inner.close());
    }

    /// Blocking [`crate::Producer::init_transactions`]: registers the transactional id,
    /// fencing older producers with it.
    ///
    /// ```no_run
    /// # fn _demo(producer: &rill_client::blocking::Producer) -> Result<(), rill_client::ClientError> {
    /// producer.init_transactions()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn init_transactions(&self) -> Result<()> {
        self.rt.block_on(self.inner.init_transactions())
    }

    /// Blocking [`crate::Producer::begin_transaction`].
    ///
    /// ```no_run
    /// # fn _demo(producer: &rill_client::blocking::Producer) -> Result<(), rill_client::ClientError> {
    /// producer.begin_transaction()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn begin_transaction(&self) -> Result<()> {
        self.rt.block_on(self.inner.begin_transaction())
    }

    /// Blocking [`crate::Producer::send_offsets_to_transaction`].
    ///
    /// ```no_run
    /// # fn _demo(producer: &rill_client::blocking::Producer) -> Result<(), rill_client::ClientError> {
    /// producer.send_offsets_to_transaction(&[("input", 0, 42)], "copier")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_offsets_to_transaction<S: AsRef<str>>(
        &self,
        offsets: &[(S, i32, i64)],
        group: impl Into<GroupMetadata>,
    ) -> Result<()> {
        self.rt
            .block_on(self.inner.send_offsets_to_transaction(offsets, group))
    }

    /// Blocking [`crate::Producer::commit_transaction`].
    ///
    /// ```no_run
    /// # fn _demo(producer: &rill_client::blocking::Producer) -> Result<(), rill_client::ClientError> {
    /// producer.commit_transaction()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn commit_transaction(&self) -> Result<()> {
        self.rt.block_on(self.inner.commit_transaction())
    }

    /// Blocking [`crate::Producer::abort_transaction`].
    ///
    /// ```no_run
    /// # fn _demo(producer: &rill_client::blocking::Producer) -> Result<(), rill_client::ClientError> {
    /// producer.abort_transaction()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn abort_transaction(&self) -> Result<()> {
        self.rt.block_on(self.inner.abort_transaction())
    }

    /// The cluster this producer talks to.
    ///
    /// ```no_run
    /// # fn _demo(producer: &rill_client::blocking::Producer) {
    /// println!("{:?}", producer.cluster().config().bootstrap);
    /// # }
    /// ```
    pub fn cluster(&self) -> &Arc<Cluster> {
        self.inner.cluster()
    }
}

/// The blocking admin client: [`crate::Admin`] on its own `current_thread` runtime. Every
/// method blocks until the async one would have returned, with the same results and errors.
///
/// Must not be used from inside an async runtime (see the [module docs](self)).
///
/// ```no_run
/// use rill_client::{AdminConfig, ClientConfig, NewTopic};
/// use rill_client::blocking::Admin;
///
/// # fn main() -> Result<(), rill_client::ClientError> {
/// let admin = Admin::new(AdminConfig::new(ClientConfig::new(["127.0.0.1:9092"])))?;
/// admin.create_topic(NewTopic::new("events", 3))?;
/// println!("{:?}", admin.describe_topic("events")?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Admin {
    inner: crate::Admin,
    rt: Runtime,
}

impl Admin {
    /// An admin client and its runtime; nothing is connected until the first call.
    ///
    /// ```no_run
    /// # use rill_client::{AdminConfig, ClientConfig};
    /// # fn main() -> Result<(), rill_client::ClientError> {
    /// let admin = rill_client::blocking::Admin::new(AdminConfig::new(ClientConfig::new([
    ///     "127.0.0.1:9092",
    /// ])))?;
    /// # drop(admin);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(config: AdminConfig) -> Result<Self> {
        Ok(Self {
            inner: crate::Admin::new(config),
            rt: runtime()?,
        })
    }

    /// The async admin client underneath (to share its cluster, say). Its futures must be
    /// driven by some other runtime: this wrapper's runs only inside its own calls.
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) {
    /// let cluster = admin.as_async().cluster().clone();
    /// # drop(cluster);
    /// # }
    /// ```
    pub fn as_async(&self) -> &crate::Admin {
        &self.inner
    }

    /// Blocking [`crate::Admin::create_topics`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::NewTopic;
    /// for result in admin.create_topics(&[NewTopic::new("a", 1), NewTopic::new("b", 2)], false)? {
    ///     result?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<Result<CreatedTopic>>> {
        self.rt
            .block_on(self.inner.create_topics(topics, validate_only))
    }

    /// Blocking [`crate::Admin::create_topic`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// admin.create_topic(rill_client::NewTopic::new("events", 3))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_topic(&self, topic: NewTopic) -> Result<CreatedTopic> {
        self.rt.block_on(self.inner.create_topic(topic))
    }

    /// Blocking [`crate::Admin::delete_topics`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// for result in admin.delete_topics(&["a", "b"])? {
    ///     result?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete_topics<S: AsRef<str> + Sync>(&self, names: &[S]) -> Result<Vec<Result<()>>> {
        self.rt.block_on(self.inner.delete_topics(names))
    }

    /// Blocking [`crate::Admin::delete_topic`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// admin.delete_topic("events")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.rt.block_on(self.inner.delete_topic(name))
    }

    /// Blocking [`crate::Admin::list_topics`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// for topic in admin.list_topics()? {
    ///     println!("{} internal={}", topic.name, topic.internal);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn list_topics(&self) -> Result<Vec<TopicListing>> {
        self.rt.block_on(self.inner.list_topics())
    }

    /// Blocking [`crate::Admin::describe_topics`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// for topic in admin.describe_topics(&["events"])? {
    ///     println!("{} partitions", topic?.partitions.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn describe_topics<S: AsRef<str> + Sync>(
        &self,
        names: &[S],
    ) -> Result<Vec<Result<TopicDescription>>> {
        self.rt.block_on(self.inner.describe_topics(names))
    }

    /// Blocking [`crate::Admin::describe_topic`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// let topic = admin.describe_topic("events")?;
    /// println!("{} partitions", topic.partitions.len());
    /// # Ok(())
    /// # }
    /// ```
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        self.rt.block_on(self.inner.describe_topic(name))
    }

    /// Blocking [`crate::Admin::create_partitions`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// for result in admin.create_partitions(&[("events", 6)], false)? {
    ///     result?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_partitions<S: AsRef<str> + Sync>(
        &self,
        totals: &[(S, i32)],
        validate_only: bool,
    ) -> Result<Vec<Result<()>>> {
        self.rt
            .block_on(self.inner.create_partitions(totals, validate_only))
    }

    /// Blocking [`crate::Admin::increase_partitions`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// admin.increase_partitions("events", 6)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn increase_partitions(&self, topic: &str, total: i32) -> Result<()> {
        self.rt
            .block_on(self.inner.increase_partitions(topic, total))
    }

    /// Blocking [`crate::Admin::describe_configs`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::ConfigResource;
    /// for configs in admin.describe_configs(&[ConfigResource::Broker(0)])? {
    ///     println!("{} configs", configs?.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn describe_configs(
        &self,
        resources: &[ConfigResource],
    ) -> Result<Vec<Result<Vec<ConfigEntry>>>> {
        self.rt.block_on(self.inner.describe_configs(resources))
    }

    /// Blocking [`crate::Admin::describe_topic_configs`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// for entry in admin.describe_topic_configs("events")? {
    ///     println!("{} = {:?}", entry.name, entry.value);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn describe_topic_configs(&self, topic: &str) -> Result<Vec<ConfigEntry>> {
        self.rt.block_on(self.inner.describe_topic_configs(topic))
    }

    /// Blocking [`crate::Admin::describe_broker_configs`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// println!("{} configs", admin.describe_broker_configs(0)?.len());
    /// # Ok(())
    /// # }
    /// ```
    pub fn describe_broker_configs(&self, node_id: i32) -> Result<Vec<ConfigEntry>> {
        self.rt
            .block_on(self.inner.describe_broker_configs(node_id))
    }

    /// Blocking [`crate::Admin::incremental_alter_configs`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::{AlterConfigOp, ConfigResource};
    /// let changes = [(
    ///     ConfigResource::Topic("events".into()),
    ///     vec![AlterConfigOp::set("retention.ms", "3600000")],
    /// )];
    /// for result in admin.incremental_alter_configs(&changes, false)? {
    ///     result?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn incremental_alter_configs(
        &self,
        changes: &[(ConfigResource, Vec<AlterConfigOp>)],
        validate_only: bool,
    ) -> Result<Vec<Result<()>>> {
        self.rt
            .block_on(self.inner.incremental_alter_configs(changes, validate_only))
    }

    /// Blocking [`crate::Admin::alter_topic_configs`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::AlterConfigOp;
    /// admin.alter_topic_configs("events", &[AlterConfigOp::delete("retention.ms")])?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn alter_topic_configs(&self, topic: &str, ops: &[AlterConfigOp]) -> Result<()> {
        self.rt.block_on(self.inner.alter_topic_configs(topic, ops))
    }

    /// Blocking [`crate::Admin::list_offsets`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::OffsetSpec;
    /// for listed in admin.list_offsets(&[("events", 0)], OffsetSpec::Earliest)? {
    ///     println!("starts at {}", listed?.offset);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn list_offsets<S: AsRef<str> + Sync>(
        &self,
        partitions: &[(S, i32)],
        spec: OffsetSpec,
    ) -> Result<Vec<Result<ListedOffset>>> {
        self.rt.block_on(self.inner.list_offsets(partitions, spec))
    }

    /// Blocking [`crate::Admin::topic_offsets`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// use rill_client::OffsetSpec;
    /// for listed in admin.topic_offsets("events", OffsetSpec::Latest)? {
    ///     println!("partition {} ends at {}", listed.partition, listed.offset);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn topic_offsets(&self, topic: &str, spec: OffsetSpec) -> Result<Vec<ListedOffset>> {
        self.rt.block_on(self.inner.topic_offsets(topic, spec))
    }

    /// Blocking [`crate::Admin::list_groups`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// for group in admin.list_groups()? {
    ///     println!("{} {:?}", group.group_id, group.state);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn list_groups(&self) -> Result<Vec<GroupListing>> {
        self.rt.block_on(self.inner.list_groups())
    }

    /// Blocking [`crate::Admin::list_groups_in_states`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// println!("{} stable groups", admin.list_groups_in_states(&["Stable"])?.len());
    /// # Ok(())
    /// # }
    /// ```
    pub fn list_groups_in_states<S: AsRef<str> + Sync>(
        &self,
        states: &[S],
    ) -> Result<Vec<GroupListing>> {
        self.rt.block_on(self.inner.list_groups_in_states(states))
    }

    /// Blocking [`crate::Admin::describe_groups`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// for group in admin.describe_groups(&["billing"])? {
    ///     println!("{}", group?.state);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn describe_groups<S: AsRef<str> + Sync>(
        &self,
        groups: &[S],
    ) -> Result<Vec<Result<GroupDescription>>> {
        self.rt.block_on(self.inner.describe_groups(groups))
    }

    /// Blocking [`crate::Admin::describe_group`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// println!("{} members", admin.describe_group("billing")?.members.len());
    /// # Ok(())
    /// # }
    /// ```
    pub fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        self.rt.block_on(self.inner.describe_group(group))
    }

    /// Blocking [`crate::Admin::delete_groups`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// for result in admin.delete_groups(&["old"])? {
    ///     result?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete_groups<S: AsRef<str> + Sync>(&self, groups: &[S]) -> Result<Vec<Result<()>>> {
        self.rt.block_on(self.inner.delete_groups(groups))
    }

    /// Blocking [`crate::Admin::delete_group`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// admin.delete_group("old")?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn delete_group(&self, group: &str) -> Result<()> {
        self.rt.block_on(self.inner.delete_group(group))
    }

    /// Blocking [`crate::Admin::group_offsets`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// for c in admin.group_offsets("billing")? {
    ///     println!("{}/{} at {}", c.topic, c.partition, c.offset);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn group_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>> {
        self.rt.block_on(self.inner.group_offsets(group))
    }

    /// Blocking [`crate::Admin::group_lag`].
    ///
    /// ```no_run
    /// # fn _demo(admin: &rill_client::blocking::Admin) -> Result<(), rill_client::ClientError> {
    /// for p in admin.group_lag("billing")? {
    ///     println!("{}/{}: {:?} behind", p.topic, p.partition, p.lag);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn group_lag(&self, group: &str) -> Result<Vec<PartitionLag>> {
        self.rt.block_on(self.inner.group_lag(group))
    }
}

/// The blocking consumer: [`crate::Consumer`] on its own multi-thread runtime with one worker
/// thread, which the [`PartitionConsumer`]s it starts share (see the [module docs](self) for
/// why not `current_thread`).
///
/// Must not be used from inside an async runtime.
///
/// ```no_run
/// use rill_client::{ClientConfig, Offset};
/// use rill_client::blocking::Consumer;
///
/// # fn main() -> Result<(), rill_client::ClientError> {
/// let consumer = Consumer::new(ClientConfig::new(["127.0.0.1:9092"]))?;
/// let mut pc = consumer.consume_partition("events", 0, Offset::Oldest)?;
/// for record in std::iter::from_fn(|| pc.next()).take(10) {
///     let record = record?;
///     println!("offset {}: {:?}", record.offset, record.value);
/// }
/// pc.close();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Consumer {
    inner: crate::Consumer,
    rt: Arc<Runtime>,
}

impl Consumer {
    /// A consumer and its runtime; takes a [`ConsumerConfig`] or a
    /// [`ClientConfig`](crate::ClientConfig). Connects nothing yet.
    ///
    /// ```no_run
    /// # use rill_client::ClientConfig;
    /// # fn main() -> Result<(), rill_client::ClientError> {
    /// let consumer = rill_client::blocking::Consumer::new(ClientConfig::new(["127.0.0.1:9092"]))?;
    /// # drop(consumer);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(config: impl Into<ConsumerConfig>) -> Result<Self> {
        let rt = worker_runtime()?;
        let inner = {
            let _entered = rt.enter();
            crate::Consumer::new(config)?
        };
        Ok(Self {
            inner,
            rt: Arc::new(rt),
        })
    }

    /// Blocking [`crate::Consumer::partitions`].
    ///
    /// ```no_run
    /// # fn _demo(consumer: &rill_client::blocking::Consumer) -> Result<(), rill_client::ClientError> {
    /// println!("{:?}", consumer.partitions("events")?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn partitions(&self, topic: &str) -> Result<Vec<i32>> {
        self.rt.block_on(self.inner.partitions(topic))
    }

    /// Blocking [`crate::Consumer::resolve_offset`].
    ///
    /// ```no_run
    /// # fn _demo(consumer: &rill_client::blocking::Consumer) -> Result<(), rill_client::ClientError> {
    /// let end = consumer.resolve_offset("events", 0, rill_client::Offset::Newest)?;
    /// println!("partition 0 ends at {end}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn resolve_offset(&self, topic: &str, partition: i32, offset: Offset) -> Result<i64> {
        self.rt
            .block_on(self.inner.resolve_offset(topic, partition, offset))
    }

    /// Blocking [`crate::Consumer::consume_partition`]: starts reading `topic`/`partition` at
    /// `offset`. The partition consumer's fetch task runs on this consumer's runtime, which it
    /// keeps alive.
    ///
    /// ```no_run
    /// # fn _demo(consumer: &rill_client::blocking::Consumer) -> Result<(), rill_client::ClientError> {
    /// let mut pc = consumer.consume_partition("events", 0, rill_client::Offset::Newest)?;
    /// if let Some(record) = pc.next() {
    ///     println!("offset {}", record?.offset);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn consume_partition(
        &self,
        topic: &str,
        partition: i32,
        offset: Offset,
    ) -> Result<PartitionConsumer> {
        let inner = self
            .rt
            .block_on(self.inner.consume_partition(topic, partition, offset))?;
        Ok(PartitionConsumer {
            inner,
            rt: Arc::clone(&self.rt),
        })
    }

    /// The async consumer underneath.
    ///
    /// ```no_run
    /// # fn _demo(consumer: &rill_client::blocking::Consumer) {
    /// println!("{:?}", consumer.as_async().cluster().config().bootstrap);
    /// # }
    /// ```
    pub fn as_async(&self) -> &crate::Consumer {
        &self.inner
    }
}

/// The blocking [`crate::PartitionConsumer`]: one partition's records in offset order;
/// [`next`](Self::next) blocks until the next record (or the error that ended the consumer;
/// `None` after it). Its fetch task keeps fetching ahead between calls.
///
/// ```no_run
/// # fn _demo(consumer: &rill_client::blocking::Consumer) -> Result<(), rill_client::ClientError> {
/// use std::time::Duration;
/// let mut pc = consumer.consume_partition("events", 0, rill_client::Offset::Oldest)?;
/// while let Some(record) = pc.next_timeout(Duration::from_secs(1)) {
///     match record {
///         Ok(record) => println!("offset {}", record.offset),
///         Err(err) => {
///             eprintln!("{err}");
///             break;
///         }
///     }
/// }
/// pc.close();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PartitionConsumer {
    // Dropped (its task aborted) before the runtime, if this holds the last reference.
    inner: crate::PartitionConsumer,
    rt: Arc<Runtime>,
}

impl PartitionConsumer {
    /// Blocking [`crate::PartitionConsumer::next`]: the next record, waiting while the
    /// partition has nothing new; the error that ended the consumer; then `None`.
    ///
    /// Not [`Iterator::next`]: an `Iterator` impl would make `pc.partition()` resolve to
    /// [`Iterator::partition`] instead of [`partition`](Self::partition). For a `for` loop
    /// use `std::iter::from_fn(|| pc.next())`.
    ///
    /// ```no_run
    /// # fn _demo(pc: &mut rill_client::blocking::PartitionConsumer) {
    /// while let Some(record) = pc.next() {
    ///     match record {
    ///         Ok(record) => println!("{}: {:?}", record.offset, record.value),
    ///         Err(err) => eprintln!("consumer stopped: {err}"),
    ///     }
    /// }
    /// # }
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<ConsumerRecord>> {
        self.rt.block_on(self.inner.next())
    }

    /// Like `next`, but gives up after `timeout`: then `Some(Err(ClientError::Timeout))`,
    /// and the consumer carries on (no record is lost; a later call picks up where it was).
    ///
    /// ```no_run
    /// # fn _demo(pc: &mut rill_client::blocking::PartitionConsumer) {
    /// match pc.next_timeout(std::time::Duration::from_millis(500)) {
    ///     Some(Ok(record)) => println!("offset {}", record.offset),
    ///     Some(Err(err)) => eprintln!("{err}"),
    ///     None => eprintln!("ended"),
    /// }
    /// # }
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<ConsumerRecord>> {
        let inner = &mut self.inner;
        let what = format!("next record of {}/{}", inner.topic(), inner.partition());
        self.rt
            .block_on(async { tokio::time::timeout(timeout, inner.next()).await })
            .unwrap_or_else(|_| timed_out(what, timeout))
    }

    /// [`crate::PartitionConsumer::high_watermark`].
    ///
    /// ```no_run
    /// # fn _demo(pc: &rill_client::blocking::PartitionConsumer) {
    /// println!("high watermark {}", pc.high_watermark());
    /// # }
    /// ```
    pub fn high_watermark(&self) -> i64 {
        self.inner.high_watermark()
    }

    /// [`crate::PartitionConsumer::position`]: the offset of the next record `next` can
    /// return.
    ///
    /// ```no_run
    /// # fn _demo(pc: &rill_client::blocking::PartitionConsumer) {
    /// println!("next offset {}", pc.position());
    /// # }
    /// ```
    pub fn position(&self) -> i64 {
        self.inner.position()
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        self.inner.topic()
    }

    /// The partition.
    pub fn partition(&self) -> i32 {
        self.inner.partition()
    }

    /// Stops the fetch task and waits until it has. Dropping also stops it, without waiting.
    ///
    /// ```no_run
    /// # fn _demo(pc: rill_client::blocking::PartitionConsumer) {
    /// pc.close();
    /// # }
    /// ```
    pub fn close(self) {
        let Self { inner, rt } = self;
        rt.block_on(inner.close());
    }
}

/// The blocking group member: [`crate::GroupConsumer`] on its own multi-thread runtime with one
/// worker thread, so that heartbeats and fetch-ahead go on between calls (see the
/// [module docs](self)). [`next`](Self::next) blocks through joins and rebalances until a
/// record of an assigned partition arrives.
///
/// Must not be used from inside an async runtime.
///
/// ```no_run
/// use rill_client::{ClientConfig, GroupConfig};
/// use rill_client::blocking::GroupConsumer;
///
/// # fn main() -> Result<(), rill_client::ClientError> {
/// let mut group = GroupConsumer::new(ClientConfig::new(["127.0.0.1:9092"]), GroupConfig::new("billing"))?;
/// group.subscribe(&["orders"]);
/// while let Some(record) = group.next() {
///     let record = record?;
///     println!("{}/{}@{}", record.topic, record.partition, record.offset);
///     group.mark(&record);
///     group.commit()?;
/// }
/// group.close()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct GroupConsumer {
    // Dropped (its tasks aborted) before the runtime they run on.
    inner: crate::GroupConsumer,
    rt: Runtime,
}

impl GroupConsumer {
    /// A group member and its runtime; joins nothing until [`subscribe`](Self::subscribe) and
    /// the first `next`.
    ///
    /// ```no_run
    /// # use rill_client::{ClientConfig, GroupConfig};
    /// # fn main() -> Result<(), rill_client::ClientError> {
    /// let group = rill_client::blocking::GroupConsumer::new(
    ///     ClientConfig::new(["127.0.0.1:9092"]),
    ///     GroupConfig::new("billing"),
    /// )?;
    /// # drop(group);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(consumer: impl Into<ConsumerConfig>, config: GroupConfig) -> Result<Self> {
        let rt = worker_runtime()?;
        let inner = {
            let _entered = rt.enter();
            crate::GroupConsumer::new(consumer, config)?
        };
        Ok(Self { inner, rt })
    }

    /// [`crate::GroupConsumer::subscribe`]: the next `next` joins (or rejoins) the group.
    ///
    /// ```no_run
    /// # fn _demo(group: &mut rill_client::blocking::GroupConsumer) {
    /// group.subscribe(&["orders", "audit"]);
    /// # }
    /// ```
    pub fn subscribe<S: AsRef<str>>(&mut self, topics: &[S]) {
        self.inner.subscribe(topics);
    }

    /// Blocking [`crate::GroupConsumer::next`]: the next record of any assigned partition,
    /// waiting through joins and rebalances (heartbeats and auto-commit also run between
    /// calls); an error the member cannot get past; `None` once closed. An inherent method,
    /// like [`PartitionConsumer::next`], rather than [`Iterator::next`].
    ///
    /// ```no_run
    /// # fn _demo(group: &mut rill_client::blocking::GroupConsumer) -> Result<(), rill_client::ClientError> {
    /// while let Some(record) = group.next() {
    ///     group.mark(&record?);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<ConsumerRecord>> {
        self.rt.block_on(self.inner.next())
    }

    /// Like [`next`](Self::next), but gives up after `timeout`: then `Some(Err(ClientError::Timeout))`, and
    /// the member carries on (no record is lost; a join in progress starts over at the next
    /// call).
    ///
    /// ```no_run
    /// # fn _demo(group: &mut rill_client::blocking::GroupConsumer) {
    /// if let Some(Ok(record)) = group.next_timeout(std::time::Duration::from_secs(1)) {
    ///     group.mark(&record);
    /// }
    /// # }
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<ConsumerRecord>> {
        let inner = &mut self.inner;
        self.rt
            .block_on(async { tokio::time::timeout(timeout, inner.next()).await })
            .unwrap_or_else(|_| timed_out("next record of the group".to_owned(), timeout))
    }

    /// [`crate::GroupConsumer::mark`]: `record`'s offset + 1 is committed at the next commit.
    ///
    /// ```no_run
    /// # fn _demo(group: &mut rill_client::blocking::GroupConsumer) {
    /// if let Some(Ok(record)) = group.next() {
    ///     group.mark(&record);
    /// }
    /// # }
    /// ```
    pub fn mark(&mut self, record: &ConsumerRecord) {
        self.inner.mark(record);
    }

    /// Blocking [`crate::GroupConsumer::commit`]: commits the marked offsets now.
    ///
    /// ```no_run
    /// # fn _demo(group: &mut rill_client::blocking::GroupConsumer) -> Result<(), rill_client::ClientError> {
    /// group.commit()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn commit(&mut self) -> Result<()> {
        self.rt.block_on(self.inner.commit())
    }

    /// The partitions assigned to this member now.
    ///
    /// ```no_run
    /// # fn _demo(group: &rill_client::blocking::GroupConsumer) {
    /// for (topic, partition) in group.assignment() {
    ///     println!("{topic}/{partition}");
    /// }
    /// # }
    /// ```
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.inner.assignment()
    }

    /// The member id the coordinator gave this member (empty before the first join).
    pub fn member_id(&self) -> &str {
        self.inner.member_id()
    }

    /// The group generation this member is in (`-1` before the first join).
    pub fn generation(&self) -> i32 {
        self.inner.generation()
    }

    /// [`crate::GroupConsumer::group_metadata`]: this member, for a transactional producer's
    /// `send_offsets_to_transaction`.
    pub fn group_metadata(&self) -> GroupMetadata {
        self.inner.group_metadata()
    }

    /// Blocking [`crate::GroupConsumer::close`]: commits what is marked, leaves the group and
    /// shuts the runtime down.
    ///
    /// ```no_run
    /// # fn _demo(group: rill_client::blocking::GroupConsumer) -> Result<(), rill_client::ClientError> {
    /// group.close()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn close(self) -> Result<()> {
        let Self { inner, rt } = self;
        rt.block_on(inner.close())
    }
}
