//! Raw Kafka frames, for tests that speak the protocol by hand.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::{Bytes, BytesMut};
use rill_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use rill_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use rill_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use rill_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use rill_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use rill_protocol::kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FetchRequest, IncrementalAlterConfigsRequest,
    ListOffsetsRequest, MetadataRequest, ProduceRequest, TopicName,
    incremental_alter_configs_request,
};
use rill_protocol::{
    ApiKey, Request, RequestHeader, RequestKind, Response, ResponseKind, StrBytes,
};

use super::{Broker, Result, hex};

/// A connection that reads and writes with timeouts.
pub fn connect(broker: &Broker) -> Result<TcpStream> {
    connect_to(&broker.bootstrap())
}

/// A connection to `addr` (`host:port`) that reads and writes with timeouts.
pub fn connect_to(addr: &str) -> Result<TcpStream> {
    let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}

/// A request header v1 (api key, version, correlation id, client id) followed by `body`, with
/// the size prefix.
pub fn frame_v1(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let client_id = b"rill-hostile";
    let mut msg = Vec::new();
    msg.extend_from_slice(&api_key.to_be_bytes());
    msg.extend_from_slice(&version.to_be_bytes());
    msg.extend_from_slice(&correlation_id.to_be_bytes());
    msg.extend_from_slice(&i16::try_from(client_id.len()).unwrap_or(0).to_be_bytes());
    msg.extend_from_slice(client_id);
    msg.extend_from_slice(body);
    sized(&msg)
}

/// `bytes` with its 4-byte big-endian size prefix.
pub fn sized(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 4);
    out.extend_from_slice(&i32::try_from(bytes.len()).unwrap_or(i32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Reads one size-prefixed response frame (without the prefix); refuses absurd sizes.
pub fn read_frame(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let mut size = [0u8; 4];
    stream
        .read_exact(&mut size)
        .context("reading a response size")?;
    let size = i32::from_be_bytes(size);
    ensure!(
        (0..=64 << 20).contains(&size),
        "response size {size} is absurd"
    );
    let mut frame = vec![0u8; usize::try_from(size)?];
    stream
        .read_exact(&mut frame)
        .context("reading a response body")?;
    Ok(frame)
}

/// What the peer did after a hostile request.
#[derive(Debug, PartialEq, Eq)]
pub enum Reaction {
    /// It closed the connection (EOF or reset).
    Closed,
    /// It sent these bytes (the first read's worth) and kept the connection open.
    Answered(Vec<u8>),
}

/// Waits up to `timeout` for the peer to close the connection or send something.
pub fn reaction(stream: &mut TcpStream, timeout: Duration) -> Result<Reaction> {
    stream.set_read_timeout(Some(timeout))?;
    let mut buf = vec![0u8; 65536];
    match stream.read(&mut buf) {
        Ok(0) => Ok(Reaction::Closed),
        Ok(n) => {
            buf.truncate(n);
            Ok(Reaction::Answered(buf))
        }
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            Ok(Reaction::Closed)
        }
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            bail!("the broker neither answered nor closed the connection within {timeout:?}")
        }
        Err(err) => Err(err.into()),
    }
}

/// Half-closes our side, so the broker sees EOF after what we sent.
pub fn finish_writing(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
}

/// A big-endian reader over a response, for hand-parsing.
#[derive(Debug)]
pub struct Wire<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Wire<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let out = self
            .bytes
            .get(self.pos..self.pos + n)
            .with_context(|| format!("response ends at {} (wanted {n} more)", self.bytes.len()))?;
        self.pos += n;
        Ok(out)
    }

    pub fn i16(&mut self) -> Result<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A non-flexible (int16-length) string; `None` for null.
    pub fn string(&mut self) -> Result<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(usize::try_from(len)?)?;
        Ok(Some(String::from_utf8(bytes.to_vec())?))
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }
}

/// One `(api key, min version, max version)` entry of an ApiVersions answer.
pub type ApiRange = (i16, i16, i16);

/// Parses an ApiVersionsResponse v0 body (after the size prefix): correlation id, error code,
/// and the api list. Fails if anything is left over, as v0 has no more fields.
pub fn parse_api_versions_v0(frame: &[u8]) -> Result<(i32, i16, Vec<ApiRange>)> {
    let mut wire = Wire::new(frame);
    let correlation_id = wire.i32()?;
    let error_code = wire.i16()?;
    let count = wire.i32()?;
    ensure!(
        (0..=1000).contains(&count),
        "api array length {count} is absurd"
    );
    let mut apis = Vec::new();
    for _ in 0..count {
        apis.push((wire.i16()?, wire.i16()?, wire.i16()?));
    }
    ensure!(
        wire.remaining() == 0,
        "{} bytes after the v0 api list: {}",
        wire.remaining(),
        hex(frame)
    );
    Ok((correlation_id, error_code, apis))
}

/// Sends ApiVersions v0 on `stream` and checks the answer: our correlation id, error 0, and
/// ApiVersions, Metadata, Produce and Fetch in the list. Returns the list.
pub fn api_versions_v0(stream: &mut TcpStream, correlation_id: i32) -> Result<Vec<ApiRange>> {
    stream.write_all(&frame_v1(18, 0, correlation_id, &[]))?;
    let frame = read_frame(stream)?;
    let (got_id, error_code, apis) = parse_api_versions_v0(&frame)?;
    ensure!(
        got_id == correlation_id,
        "correlation id {got_id}, sent {correlation_id}"
    );
    ensure!(
        error_code == 0,
        "ApiVersions v0 answered error {error_code}"
    );
    for key in [0, 1, 3, 18] {
        ensure!(
            apis.iter().any(|(k, _, _)| *k == key),
            "api key {key} missing from ApiVersions: {apis:?}"
        );
    }
    Ok(apis)
}

/// Sends Metadata v1 for all topics on `stream`; returns the brokers as (node id, host, port).
pub fn metadata_v1_brokers(
    stream: &mut TcpStream,
    correlation_id: i32,
) -> Result<Vec<(i32, String, i32)>> {
    // v1 body: topics = null (all topics).
    stream.write_all(&frame_v1(3, 1, correlation_id, &(-1i32).to_be_bytes()))?;
    let frame = read_frame(stream)?;
    let mut wire = Wire::new(&frame);
    let got_id = wire.i32()?;
    ensure!(
        got_id == correlation_id,
        "correlation id {got_id}, sent {correlation_id}"
    );
    let count = wire.i32()?;
    ensure!((0..=100).contains(&count), "broker count {count}");
    let mut brokers = Vec::new();
    for _ in 0..count {
        let node = wire.i32()?;
        let host = wire.string()?.context("null broker host")?;
        let port = wire.i32()?;
        let _rack = wire.string()?;
        brokers.push((node, host, port));
    }
    Ok(brokers)
}

/// The broker still works: it is running, and a fresh connection gets ApiVersions v0 and
/// Metadata v1 answered, with this broker as the only node.
pub fn assert_healthy(broker: &mut Broker) -> Result<()> {
    ensure!(
        broker.is_running()?,
        "the broker process died\n{}",
        broker.output_tail(40)
    );
    let mut stream = connect(broker)?;
    let _ = api_versions_v0(&mut stream, 7001).context("ApiVersions on a fresh connection")?;
    let brokers =
        metadata_v1_brokers(&mut stream, 7002).context("Metadata on a fresh connection")?;
    ensure!(
        brokers.len() == 1
            && brokers
                .first()
                .is_some_and(|(_, host, port)| *host == broker.host
                    && i64::from(*port) == i64::from(broker.port)),
        "metadata brokers {brokers:?}, expected one at {}",
        broker.bootstrap()
    );
    Ok(())
}

/// One request as a frame (size prefix, header, body), encoded with rill-protocol.
pub fn encode_request(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: impl Into<RequestKind>,
) -> Result<BytesMut> {
    let header = RequestHeader::new(api_key, version, correlation_id).with_client_id("rill-test");
    let mut buf = BytesMut::new();
    Request::new(header, body).encode(&mut buf)?;
    Ok(buf)
}

/// Writes one request without waiting for its answer (for acks=0, pipelining, long polls).
pub fn send_request(
    stream: &mut TcpStream,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: impl Into<RequestKind>,
) -> Result<()> {
    stream.write_all(&encode_request(api_key, version, correlation_id, body)?)?;
    Ok(())
}

/// Reads the next answer on `stream`, decoded as `api_key` at `version`; it must carry
/// `correlation_id`.
pub fn read_response(
    stream: &mut TcpStream,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<ResponseKind> {
    let frame = read_frame(stream)?;
    let response = Response::decode(api_key, version, Bytes::from(frame))?;
    ensure!(
        response.correlation_id == correlation_id,
        "answer to request {}, expected one to {correlation_id}",
        response.correlation_id
    );
    Ok(response.body)
}

/// One request and its answer over a raw connection, encoded with rill-protocol.
pub fn call(
    stream: &mut TcpStream,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: impl Into<RequestKind>,
) -> Result<ResponseKind> {
    send_request(stream, api_key, version, correlation_id, body)?;
    read_response(stream, api_key, version, correlation_id)
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// An answer's optional error message as text ("" when there is none).
pub fn message(text: Option<&StrBytes>) -> String {
    text.map(ToString::to_string).unwrap_or_default()
}

/// A produce request carrying `records` for one partition.
pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

/// Produces `records` to one partition (Produce v9, acks=-1) and returns the partition's
/// (error code, base offset).
pub fn produce_one(
    stream: &mut TcpStream,
    topic: &str,
    partition: i32,
    records: Bytes,
    correlation_id: i32,
) -> Result<(i16, i64)> {
    let request = produce_request(topic, partition, records, -1);
    let ResponseKind::Produce(response) =
        call(stream, ApiKey::Produce, 9, correlation_id, request)?
    else {
        bail!("not a produce answer");
    };
    let answer = response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .context("no partition in the produce answer")?;
    ensure!(
        answer.index == partition,
        "produce answer for partition {}, sent {partition}",
        answer.index
    );
    Ok((answer.error_code, answer.base_offset))
}

/// ListOffsets v7 for one partition at `timestamp` (-1 latest, -2 earliest); returns the
/// partition's (error code, offset).
pub fn list_offset(
    stream: &mut TcpStream,
    topic: &str,
    partition: i32,
    timestamp: i64,
    correlation_id: i32,
) -> Result<(i16, i64)> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let ResponseKind::ListOffsets(response) =
        call(stream, ApiKey::ListOffsets, 7, correlation_id, request)?
    else {
        bail!("not a list offsets answer");
    };
    response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| (p.error_code, p.offset))
        .context("no partition in the list offsets answer")
}

/// The log end offset (ListOffsets latest) of one partition; fails on an error code.
pub fn log_end(
    stream: &mut TcpStream,
    topic: &str,
    partition: i32,
    correlation_id: i32,
) -> Result<i64> {
    let (code, offset) = list_offset(stream, topic, partition, -1, correlation_id)?;
    ensure!(
        code == 0,
        "ListOffsets latest of {topic}/{partition} answered error {code}"
    );
    Ok(offset)
}

/// The first stored batch at or after `offset` of one partition, as Fetch v12 returns it.
pub fn first_batch(
    stream: &mut TcpStream,
    topic: &str,
    partition: i32,
    offset: i64,
    correlation_id: i32,
) -> Result<Bytes> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let ResponseKind::Fetch(response) = call(stream, ApiKey::Fetch, 12, correlation_id, request)?
    else {
        bail!("not a fetch answer");
    };
    let data = response
        .responses
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .context("no partition in the fetch answer")?;
    ensure!(
        data.error_code == 0,
        "fetch of {topic}/{partition} at {offset}: error {}",
        data.error_code
    );
    let records = data.records.context("no records fetched")?;
    let len = rill_record::Batch::parse(&records)?.as_bytes().len();
    Ok(records.slice(..len))
}

/// A raw connection that numbers its requests.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    next_id: i32,
}

impl Conn {
    pub fn open(broker: &Broker) -> Result<Self> {
        Self::open_to(&broker.bootstrap())
    }

    /// A connection to `addr` (`host:port`), e.g. one broker of a cluster.
    pub fn open_to(addr: &str) -> Result<Self> {
        Ok(Self {
            stream: connect_to(addr)?,
            next_id: 1,
        })
    }

    /// A connection to `host:port` (any broker of a cluster, from another thread).
    pub fn open_at(bootstrap: &str) -> Result<Self> {
        let stream =
            TcpStream::connect(bootstrap).with_context(|| format!("connecting to {bootstrap}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Self { stream, next_id: 1 })
    }

    /// The next correlation id.
    pub fn id(&mut self) -> i32 {
        self.next_id += 1;
        self.next_id
    }

    /// Produce v9 of `records` to one partition, acks=-1: (error code, base offset).
    pub fn produce(&mut self, topic: &str, partition: i32, records: Bytes) -> Result<(i16, i64)> {
        let id = self.id();
        produce_one(&mut self.stream, topic, partition, records, id)
    }

    /// ListOffsets v7 of one partition at `timestamp`: (error code, offset).
    pub fn offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> Result<(i16, i64)> {
        let id = self.id();
        list_offset(&mut self.stream, topic, partition, timestamp, id)
    }

    /// The partition's log end offset; fails on an error code.
    pub fn log_end(&mut self, topic: &str, partition: i32) -> Result<i64> {
        let id = self.id();
        log_end(&mut self.stream, topic, partition, id)
    }

    /// CreateTopics v7 of one single-partition topic with these configs: its error code.
    pub fn create_topic(&mut self, topic: &str, configs: &[(&str, &str)]) -> Result<i16> {
        let text = |t: &str| StrBytes::from_string(t.to_owned());
        let configs = configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(text(k))
                    .with_value(Some(text(v)))
            })
            .collect();
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(text(topic)))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
                    .with_configs(configs),
            ]);
        let response = ask!(self, CreateTopics, 7, request);
        response
            .topics
            .first()
            .map(|t| t.error_code)
            .context("no topic in the CreateTopics answer")
    }

    /// IncrementalAlterConfigs v1 of one resource (`resource_type` 2: topic, 4: broker), each
    /// change a (name, operation, value): the error code and message.
    pub fn incremental_alter_configs(
        &mut self,
        resource_type: i8,
        name: &str,
        changes: &[(&str, i8, Option<&str>)],
        validate_only: bool,
    ) -> Result<(i16, String)> {
        let text = |t: &str| StrBytes::from_string(t.to_owned());
        let configs = changes
            .iter()
            .map(|(k, op, v)| {
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(text(k))
                    .with_config_operation(*op)
                    .with_value(v.map(text))
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(text(name))
                    .with_configs(configs),
            ]);
        let response = ask!(self, IncrementalAlterConfigs, 1, request);
        let result = response
            .responses
            .first()
            .context("no resource in the IncrementalAlterConfigs answer")?;
        Ok((result.error_code, message(result.error_message.as_ref())))
    }

    /// Every topic Metadata v12 lists (asking creates none), with its partition count.
    pub fn topics(&mut self) -> Result<BTreeMap<String, usize>> {
        let request = MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false);
        let response = ask!(self, Metadata, 12, request);
        let mut topics = BTreeMap::new();
        for topic in response.topics {
            ensure!(
                topic.error_code == 0,
                "Metadata of all topics lists {:?} with error {}",
                topic.name,
                topic.error_code
            );
            let name = topic.name.context("a topic without a name in Metadata")?;
            let _ = topics.insert(name.0.to_string(), topic.partitions.len());
        }
        Ok(topics)
    }

    /// Metadata v12 of one topic, creating it if `auto_create` and the broker allow:
    /// (error code, partition count).
    pub fn metadata_of(&mut self, topic: &str, auto_create: bool) -> Result<(i16, usize)> {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
            ]))
            .with_allow_auto_topic_creation(auto_create);
        let response = ask!(self, Metadata, 12, request);
        let answer = response
            .topics
            .first()
            .context("no topic in the Metadata answer")?;
        Ok((answer.error_code, answer.partitions.len()))
    }

    /// The partition's log start offset; fails on an error code.
    pub fn earliest(&mut self, topic: &str, partition: i32) -> Result<i64> {
        let (code, offset) = self.offset(topic, partition, -2)?;
        ensure!(
            code == 0,
            "ListOffsets earliest of {topic}/{partition}: error {code}"
        );
        Ok(offset)
    }
}
