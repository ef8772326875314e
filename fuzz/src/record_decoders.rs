//! What must hold for the decoders of stored records (SPEC §10, §11):
//! bytes read back from a database file that may be damaged.
//!
//! Every decoder sees the input: `User`, `Session`, `Series`, `Lockout`,
//! `ApiTokenRecord`, `Verification` (`src/store/mod.rs`) and the redb
//! store's `StoredSession` (a session with the deadline it is filed
//! under). For each of them and every input:
//! - decoding never panics;
//! - whenever it succeeds, encoding the record gives the input back byte
//!   for byte (so there is one encoding per record and nothing is lost),
//!   and decoding that gives an equal record;
//! - every proper prefix of a decodable input, and the input with a byte
//!   appended, is refused.
//!
//! The input also drives the codec's primitives directly: the first byte
//! says how many fields, the next bytes which kinds (integers, options,
//! short and long strings and byte strings, arrays, addresses), the rest is
//! a record of format 1. If `Reader` reads all of them and `finish`
//! accepts, `Writer` writing the same values in the same order reproduces
//! the record exactly.
//!
//! This file is also compiled into `tests/it` (see `tests/it/corpus.rs`),
//! so it uses nothing but `authd`'s public API and `std`.

use std::fmt::Debug;
use std::net::IpAddr;

use authd::store::codec::{DecodeError, Reader, Writer};
use authd::store::redb::StoredSession;
use authd::store::{ApiTokenRecord, Lockout, Series, Session, User, Verification};

/// Panics if any property above fails for `data`.
pub fn check(data: &[u8]) {
    round_trip(data, |b| User::decode(7, b), User::encode);
    round_trip(data, Session::decode, Session::encode);
    round_trip(data, Series::decode, Series::encode);
    round_trip(data, Lockout::decode, |(l, forget)| l.encode(*forget));
    round_trip(data, ApiTokenRecord::decode, ApiTokenRecord::encode);
    round_trip(data, Verification::decode, Verification::encode);
    round_trip(
        data,
        |b| StoredSession::decode(b).map(|s| (s.session, s.filed)).map_err(|e| e.to_string()),
        |(session, filed)| StoredSession::encode(session, *filed),
    );
    check_primitives(data);
}

fn round_trip<T: PartialEq + Debug, E: Debug>(
    data: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, E>,
    encode: impl Fn(&T) -> Vec<u8>,
) {
    let Ok(record) = decode(data) else { return };
    let bytes = encode(&record);
    assert_eq!(bytes, data, "{record:?} encodes differently from the bytes it was read from");
    assert_eq!(decode(&bytes).ok().as_ref(), Some(&record));
    for n in 0..data.len() {
        let prefix = data.get(..n).unwrap_or_default();
        assert!(decode(prefix).is_err(), "a {n}-byte prefix of {record:?} decoded");
    }
    let mut longer = data.to_vec();
    longer.push(0);
    assert!(decode(&longer).is_err(), "{record:?} with a trailing byte decoded");
}

/// One field of a record, as the codec reads and writes it.
#[derive(Debug)]
enum Field {
    U8(u8),
    Bool(bool),
    U32(u32),
    U64(u64),
    OptU64(Option<u64>),
    Array([u8; 4]),
    ShortBytes(Vec<u8>),
    Bytes(Vec<u8>),
    Str(String),
    ShortStr(String),
    OptStr(Option<String>),
    OptArray(Option<[u8; 16]>),
    OptIp(Option<IpAddr>),
}

fn read(r: &mut Reader<'_>, kind: u8) -> Result<Field, DecodeError> {
    Ok(match kind % 13 {
        0 => Field::U8(r.u8()?),
        1 => Field::Bool(r.bool()?),
        2 => Field::U32(r.u32()?),
        3 => Field::U64(r.u64()?),
        4 => Field::OptU64(r.opt_u64()?),
        5 => Field::Array(r.array()?),
        6 => Field::ShortBytes(r.short_bytes()?.to_vec()),
        7 => Field::Bytes(r.bytes()?.to_vec()),
        8 => Field::Str(r.str()?),
        9 => Field::ShortStr(r.short_str()?),
        10 => Field::OptStr(r.opt_str()?),
        11 => Field::OptArray(r.opt_array()?),
        _ => Field::OptIp(r.opt_ip()?),
    })
}

fn write(w: &mut Writer, f: &Field) {
    match f {
        Field::U8(v) => w.u8(*v),
        Field::Bool(v) => w.bool(*v),
        Field::U32(v) => w.u32(*v),
        Field::U64(v) => w.u64(*v),
        Field::OptU64(v) => w.opt_u64(*v),
        Field::Array(v) => w.array(v),
        Field::ShortBytes(v) => w.short_bytes(v),
        Field::Bytes(v) => w.bytes(v),
        Field::Str(v) => w.str(v),
        Field::ShortStr(v) => w.short_str(v),
        Field::OptStr(v) => w.opt_str(v.as_deref()),
        Field::OptArray(v) => w.opt_array(v.as_ref()),
        Field::OptIp(v) => w.opt_ip(*v),
    };
}

fn check_primitives(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else { return };
    let Some((kinds, record)) = rest.split_at_checked(usize::from(n % 16)) else { return };
    let Ok(mut r) = Reader::new(record, 1) else { return };
    let mut fields = Vec::with_capacity(kinds.len());
    for &kind in kinds {
        match read(&mut r, kind) {
            Ok(f) => fields.push(f),
            Err(_) => return,
        }
    }
    if r.finish().is_err() {
        return;
    }
    let mut w = Writer::new(1);
    for f in &fields {
        write(&mut w, f);
    }
    assert_eq!(w.finish(), record, "{fields:?} written differently from the record they were read from");
}
