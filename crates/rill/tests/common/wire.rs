//! Raw Kafka frames, for tests that speak the protocol by hand.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use super::{Broker, Result, hex};

/// A connection that reads and writes with timeouts.
pub fn connect(broker: &Broker) -> Result<TcpStream> {
    let addr = (broker.host.as_str(), broker.port);
    let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr:?}"))?;
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
