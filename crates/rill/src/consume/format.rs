//! How `rill consume` prints a record: kcat's `-f` placeholders, or one JSON object a line.

use std::io::Write;

use base64::Engine as _;
use bytes::Bytes;
use rill_client::{ConsumerRecord, Header};

/// The parts of a record that get printed (borrowed from a [`ConsumerRecord`]).
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a Bytes>,
    pub(crate) value: Option<&'a Bytes>,
    pub(crate) headers: &'a [Header],
}

impl<'a> From<&'a ConsumerRecord> for Fields<'a> {
    fn from(r: &'a ConsumerRecord) -> Self {
        Self {
            topic: &r.topic,
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key.as_ref(),
            value: r.value.as_ref(),
            headers: &r.headers,
        }
    }
}

/// One piece of a `--format` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Timestamp,
    Headers,
    KeyLength,
    ValueLength,
}

/// How records are printed.
#[derive(Debug, Clone)]
pub(crate) enum Printer {
    /// A parsed `--format` string.
    Format(Vec<Token>),
    /// `--json`.
    Json,
}

impl Printer {
    /// Parses a `--format` string (kcat's placeholders and escapes).
    pub(crate) fn format(text: &str) -> Result<Self, String> {
        let mut tokens = Vec::new();
        let mut literal = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let token = match chars.next() {
                        Some('t') => Token::Topic,
                        Some('p') => Token::Partition,
                        Some('o') => Token::Offset,
                        Some('k') => Token::Key,
                        Some('s') => Token::Value,
                        Some('T') => Token::Timestamp,
                        Some('h') => Token::Headers,
                        Some('K') => Token::KeyLength,
                        Some('S') => Token::ValueLength,
                        Some('%') => {
                            literal.push(b'%');
                            continue;
                        }
                        Some(other) => {
                            return Err(format!(
                                "unknown placeholder '%{other}' (known: %t %p %o %k %s %T %h %K %S %%)"
                            ));
                        }
                        None => {
                            return Err(
                                "the format ends with a lone '%' (use %% for '%')".to_owned()
                            );
                        }
                    };
                    if !literal.is_empty() {
                        tokens.push(Token::Literal(std::mem::take(&mut literal)));
                    }
                    tokens.push(token);
                }
                '\\' => {
                    let byte = match chars.next() {
                        Some('n') => b'\n',
                        Some('t') => b'\t',
                        Some('r') => b'\r',
                        Some('\\') => b'\\',
                        Some(other) => {
                            return Err(format!(
                                "unknown escape '\\{other}' (known: \\n \\t \\r \\\\)"
                            ));
                        }
                        None => {
                            return Err(
                                "the format ends with a lone '\\' (use \\\\ for '\\')".to_owned()
                            );
                        }
                    };
                    literal.push(byte);
                }
                c => {
                    let mut utf8 = [0; 4];
                    literal.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Ok(Self::Format(tokens))
    }

    /// Writes `record` to `out`.
    pub(crate) fn write(&self, out: &mut impl Write, record: &Fields<'_>) -> std::io::Result<()> {
        match self {
            Self::Format(tokens) => {
                for token in tokens {
                    write_token(out, token, record)?;
                }
                Ok(())
            }
            Self::Json => {
                serde_json::to_writer(&mut *out, &to_json(record))?;
                out.write_all(b"\n")
            }
        }
    }
}

fn write_token(out: &mut impl Write, token: &Token, r: &Fields<'_>) -> std::io::Result<()> {
    let length = |b: Option<&Bytes>| b.map_or(-1, |b| i64::try_from(b.len()).unwrap_or(i64::MAX));
    match token {
        Token::Literal(bytes) => out.write_all(bytes),
        Token::Topic => out.write_all(r.topic.as_bytes()),
        Token::Partition => write!(out, "{}", r.partition),
        Token::Offset => write!(out, "{}", r.offset),
        // A null key or value prints as nothing; %K/%S tell it from an empty one (-1).
        Token::Key => out.write_all(r.key.map_or(&[][..], |b| b)),
        Token::Value => out.write_all(r.value.map_or(&[][..], |b| b)),
        Token::Timestamp => write!(out, "{}", r.timestamp),
        Token::KeyLength => write!(out, "{}", length(r.key)),
        Token::ValueLength => write!(out, "{}", length(r.value)),
        Token::Headers => {
            for (i, header) in r.headers.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                out.write_all(&header.key)?;
                // A null header value prints as the bare name, an empty one as `name=`.
                if let Some(value) = &header.value {
                    out.write_all(b"=")?;
                    out.write_all(value)?;
                }
            }
            Ok(())
        }
    }
}

/// A record as one JSON object, fields in this order. Keys, values and header names and
/// values that are UTF-8 are JSON strings; other bytes are `{"base64": "..."}` (standard
/// alphabet, padded), so nothing is lost or mangled; null stays `null`.
#[derive(Debug, serde::Serialize)]
struct JsonRecord<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: JsonBytes<'a>,
    value: JsonBytes<'a>,
    headers: Vec<JsonHeader<'a>>,
}

#[derive(Debug, serde::Serialize)]
struct JsonHeader<'a> {
    key: JsonBytes<'a>,
    value: JsonBytes<'a>,
}

#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
enum JsonBytes<'a> {
    Null,
    Text(&'a str),
    Binary { base64: String },
}

impl<'a> JsonBytes<'a> {
    fn new(bytes: Option<&'a [u8]>) -> Self {
        match bytes {
            None => Self::Null,
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Self::Text(text),
                Err(_) => Self::Binary {
                    base64: base64::engine::general_purpose::STANDARD.encode(bytes),
                },
            },
        }
    }
}

fn to_json<'a>(r: &'a Fields<'_>) -> JsonRecord<'a> {
    JsonRecord {
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: JsonBytes::new(r.key.map(|b| &b[..])),
        value: JsonBytes::new(r.value.map(|b| &b[..])),
        headers: r
            .headers
            .iter()
            .map(|h| JsonHeader {
                key: JsonBytes::new(Some(&h.key)),
                value: JsonBytes::new(h.value.as_deref()),
            })
            .collect(),
    }
}

#[cfg(test)]
#[expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a test fails by panicking"
)]
mod tests {
    use bytes::Bytes;
    use rill_client::Header;

    use super::{Fields, Printer};

    fn print(printer: &Printer, key: Option<&Bytes>, value: Option<&Bytes>) -> String {
        let headers = [
            Header::new("a", Some(Bytes::from_static(b"1"))),
            Header::new("n", None),
            Header::new("e", Some(Bytes::new())),
        ];
        let fields = Fields {
            topic: "demo",
            partition: 2,
            offset: 41,
            timestamp: 1_714_564_800_000,
            key,
            value,
            headers: &headers,
        };
        let mut out = Vec::new();
        printer.write(&mut out, &fields).expect("writing to a Vec");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn every_placeholder_and_escape() {
        let printer = Printer::format("%t/%p@%o %k=%s %T [%h] %K %S 100%%\\t|\\n").expect("valid");
        let (key, value) = (Bytes::from_static(b"k1"), Bytes::from_static(b"hello"));
        assert_eq!(
            print(&printer, Some(&key), Some(&value)),
            "demo/2@41 k1=hello 1714564800000 [a=1,n,e=] 2 5 100%\t|\n"
        );
        // Null prints as nothing, and its length as -1; empty is 0.
        let empty = Bytes::new();
        assert_eq!(
            print(
                &Printer::format("%k|%s|%K|%S").expect("valid"),
                None,
                Some(&empty)
            ),
            "||-1|0"
        );
    }

    #[test]
    fn bad_formats_are_refused() {
        assert!(Printer::format("%x").unwrap_err().contains("'%x'"));
        assert!(Printer::format("50%").is_err());
        assert!(Printer::format("\\q").unwrap_err().contains("'\\q'"));
    }

    #[test]
    fn json_marks_bytes_that_are_not_utf8() {
        let value = Bytes::from_static(&[0xff, 0x00, 0x41]);
        let line = print(&Printer::Json, None, Some(&value));
        assert!(
            line.starts_with(r#"{"topic":"demo","partition":2,"offset":41,"#),
            "{line}"
        );
        assert!(line.ends_with("}\n"));
        let json: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(json["topic"], "demo");
        assert_eq!(json["partition"], 2);
        assert_eq!(json["offset"], 41);
        assert_eq!(json["timestamp"], 1_714_564_800_000_i64);
        assert_eq!(json["key"], serde_json::Value::Null);
        assert_eq!(json["value"], serde_json::json!({"base64": "/wBB"}));
        assert_eq!(
            json["headers"][0],
            serde_json::json!({"key": "a", "value": "1"})
        );
        assert_eq!(json["headers"][1]["value"], serde_json::Value::Null);
        assert_eq!(json["headers"][2]["value"], "");
    }
}
