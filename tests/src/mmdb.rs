//! A minimal MaxMind DB writer (format 2.0, <https://maxmind.github.io/MaxMind-DB/>):
//! an IPv6 search tree whose IPv4 networks sit under `::/96`, as in GeoLite2,
//! a data section of maps and strings, and the metadata map.
//!
//! Shared by the PIP's geo tests and the PIP/PDP integration tests, which
//! build small test databases with it.

use std::net::IpAddr;

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(usize),
    Data(usize),
}

/// Builds a database in memory.
pub struct Writer {
    record_size: u16,
    nodes: Vec<[Rec; 2]>,
    data: Vec<u8>,
}

/// Data-section values the tests need.
pub enum Value<'a> {
    /// A UTF-8 string.
    Str(&'a str),
    /// A map of keys to values.
    Map(Vec<(&'a str, Value<'a>)>),
    /// An unsigned 16-bit integer.
    U16(u16),
    /// An unsigned 32-bit integer.
    U32(u32),
    /// An unsigned 64-bit integer.
    U64(u64),
    /// An array.
    Array(Vec<Value<'a>>),
}

fn control(out: &mut Vec<u8>, ty: u8, size: usize) {
    // Types above 7 are "extended": type 0 in the control byte, then type - 7.
    let (high, ext) = if ty <= 7 {
        (ty << 5, None)
    } else {
        (0, Some(ty - 7))
    };
    let (low, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, vec![])
    } else if size < 285 {
        (29, vec![(size - 29) as u8])
    } else if size < 65_821 {
        (30, ((size - 285) as u16).to_be_bytes().to_vec())
    } else {
        (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec())
    };
    out.push(high | low);
    out.extend(ext);
    out.extend(extra);
}

fn uint(out: &mut Vec<u8>, ty: u8, v: u64, width: usize) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let payload = &bytes[skip.max(8 - width)..];
    control(out, ty, payload.len());
    out.extend_from_slice(payload);
}

/// Appends the encoding of `v` to `out`.
pub fn encode(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => {
            control(out, 2, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Map(entries) => {
            control(out, 7, entries.len());
            for (k, v) in entries {
                encode(out, &Value::Str(k));
                encode(out, v);
            }
        }
        Value::U16(n) => uint(out, 5, u64::from(*n), 2),
        Value::U32(n) => uint(out, 6, u64::from(*n), 4),
        Value::U64(n) => uint(out, 9, *n, 8),
        Value::Array(items) => {
            control(out, 11, items.len());
            for item in items {
                encode(out, item);
            }
        }
    }
}

/// 128 bits and a prefix length in the IPv6 tree.
fn tree_key(addr: IpAddr, len: u8) -> (u128, u8) {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 96 + len),
        IpAddr::V6(a) => (u128::from(a), len),
    }
}

impl Writer {
    /// An empty tree with 24- or 28-bit records.
    pub fn new(record_size: u16) -> Self {
        assert!(record_size == 24 || record_size == 28);
        Self {
            record_size,
            nodes: vec![[Rec::Empty, Rec::Empty]],
            data: Vec::new(),
        }
    }

    /// Appends a record to the data section; returns its offset.
    pub fn add_data(&mut self, v: &Value) -> usize {
        let offset = self.data.len();
        encode(&mut self.data, v);
        offset
    }

    /// Points `addr/len` at the record at `data`. Insert wider networks first.
    pub fn insert(&mut self, addr: IpAddr, len: u8, data: usize) {
        let (bits, len) = tree_key(addr, len);
        assert!(len >= 1);
        let mut node = 0;
        for depth in 0..usize::from(len) - 1 {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            node = match self.nodes[node][bit] {
                Rec::Node(n) => n,
                // Splitting a wider network keeps its data on both sides.
                fill @ (Rec::Empty | Rec::Data(_)) => {
                    self.nodes.push([fill, fill]);
                    let n = self.nodes.len() - 1;
                    self.nodes[node][bit] = Rec::Node(n);
                    n
                }
            };
        }
        let bit = ((bits >> (128 - usize::from(len))) & 1) as usize;
        self.nodes[node][bit] = Rec::Data(data);
    }

    /// The database file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let count = self.nodes.len();
        let value = |r: Rec| -> u32 {
            match r {
                Rec::Empty => count as u32,
                Rec::Node(n) => n as u32,
                Rec::Data(off) => (count + 16 + off) as u32,
            }
        };
        let mut out = Vec::new();
        for [l, r] in &self.nodes {
            let (l, r) = (value(*l), value(*r));
            if self.record_size == 24 {
                out.extend_from_slice(&l.to_be_bytes()[1..]);
                out.extend_from_slice(&r.to_be_bytes()[1..]);
            } else {
                out.extend_from_slice(&l.to_be_bytes()[1..]);
                out.push((((l >> 24) & 0x0f) << 4) as u8 | ((r >> 24) & 0x0f) as u8);
                out.extend_from_slice(&r.to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        encode(
            &mut out,
            &Value::Map(vec![
                ("node_count", Value::U32(count as u32)),
                ("record_size", Value::U16(self.record_size)),
                ("ip_version", Value::U16(6)),
                ("database_type", Value::Str("Test-Country")),
                ("languages", Value::Array(vec![Value::Str("en")])),
                ("binary_format_major_version", Value::U16(2)),
                ("binary_format_minor_version", Value::U16(0)),
                ("build_epoch", Value::U64(1_700_000_000)),
                (
                    "description",
                    Value::Map(vec![("en", Value::Str("authz-pip test database"))]),
                ),
            ]),
        );
        out
    }
}

/// A GeoLite2-Country-shaped record.
pub fn country_record(iso: &str) -> Value<'_> {
    use Value::*;
    Map(vec![
        (
            "continent",
            Map(vec![("code", Str("EU")), ("geoname_id", U32(6_255_148))]),
        ),
        (
            "country",
            Map(vec![
                ("geoname_id", U32(2_921_044)),
                ("iso_code", Str(iso)),
                ("names", Map(vec![("en", Str("Somewhere"))])),
            ]),
        ),
        ("registered_country", Map(vec![("iso_code", Str("ZZ"))])),
    ])
}
