//! A small, versioned binary encoding for stored records.
//!
//! Every record starts with a format byte. Decoding is total: any byte
//! string gives a record or a [`DecodeError`], never a panic, because the
//! bytes come from a file that may be damaged.

use std::fmt;
use std::net::IpAddr;

/// A record could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undecodable record: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Appends fields to a byte buffer.
#[derive(Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    /// A writer whose first byte is the record's format version.
    pub fn new(format: u8) -> Self {
        let mut v = Vec::with_capacity(64);
        v.push(format);
        Writer(v)
    }

    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.0
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// An optional `u64`; `0` stands for "none" (no stored time is the epoch).
    pub fn opt_u64(&mut self, v: Option<u64>) -> &mut Self {
        self.u64(v.unwrap_or(0))
    }

    pub fn array<const N: usize>(&mut self, v: &[u8; N]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }

    /// A byte string of at most 255 bytes (longer input is cut at 255).
    pub fn short_bytes(&mut self, v: &[u8]) -> &mut Self {
        let v = v.get(..255).unwrap_or(v);
        self.u8(v.len() as u8); // at most 255 after the cut above
        self.0.extend_from_slice(v);
        self
    }

    /// A byte string of at most 65535 bytes (longer input is cut).
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let v = v.get(..65_535).unwrap_or(v);
        self.0.extend_from_slice(&(v.len() as u16).to_le_bytes()); // at most 65535
        self.0.extend_from_slice(v);
        self
    }

    /// A string of at most 65535 bytes, cut at a character boundary.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(truncate_utf8(v, 65_535).as_bytes())
    }

    /// A string of at most 255 bytes, cut at a character boundary.
    pub fn short_str(&mut self, v: &str) -> &mut Self {
        self.short_bytes(truncate_utf8(v, 255).as_bytes())
    }

    pub fn opt_str(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(s) => self.u8(1).str(s),
        }
    }

    pub fn opt_array<const N: usize>(&mut self, v: Option<&[u8; N]>) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(a) => self.u8(1).array(a),
        }
    }

    pub fn opt_ip(&mut self, v: Option<IpAddr>) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(IpAddr::V4(a)) => self.u8(4).array(&a.octets()),
            Some(IpAddr::V6(a)) => self.u8(6).array(&a.octets()),
        }
    }
}

/// The longest prefix of `s` that is at most `max` bytes and valid UTF-8.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// Reads fields back in the order they were written.
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// A reader that first checks the record's format byte.
    pub fn new(bytes: &'a [u8], format: u8) -> Result<Self, DecodeError> {
        match bytes.split_first() {
            Some((&f, rest)) if f == format => Ok(Reader(rest)),
            Some(_) => Err(DecodeError("unknown record format")),
            None => Err(DecodeError("empty record")),
        }
    }

    /// Succeeds only if every byte was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("trailing bytes"))
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("record too short"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError("bad boolean")),
        }
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        Ok(Some(self.u64()?).filter(|&v| v != 0))
    }

    pub fn short_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = u16::from_le_bytes(self.array()?);
        self.take(usize::from(n))
    }

    pub fn str(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError("string is not UTF-8"))
    }

    pub fn short_str(&mut self) -> Result<String, DecodeError> {
        let b = self.short_bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError("string is not UTF-8"))
    }

    pub fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            _ => Err(DecodeError("bad option tag")),
        }
    }

    pub fn opt_array<const N: usize>(&mut self) -> Result<Option<[u8; N]>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.array().map(Some),
            _ => Err(DecodeError("bad option tag")),
        }
    }

    pub fn opt_ip(&mut self) -> Result<Option<IpAddr>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            4 => Ok(Some(IpAddr::from(self.array::<4>()?))),
            6 => Ok(Some(IpAddr::from(self.array::<16>()?))),
            _ => Err(DecodeError("bad address tag")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut w = Writer::new(7);
        w.u8(1).bool(true).u32(99).u64(u64::MAX).opt_u64(None).opt_u64(Some(5));
        w.str("héllo").short_str("x").opt_str(None).opt_str(Some("y"));
        w.opt_array(Some(&[1u8, 2, 3])).opt_ip(Some("::1".parse().unwrap())).opt_ip(None);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes, 7).unwrap();
        assert_eq!(r.u8().unwrap(), 1);
        assert!(r.bool().unwrap());
        assert_eq!(r.u32().unwrap(), 99);
        assert_eq!(r.u64().unwrap(), u64::MAX);
        assert_eq!(r.opt_u64().unwrap(), None);
        assert_eq!(r.opt_u64().unwrap(), Some(5));
        assert_eq!(r.str().unwrap(), "héllo");
        assert_eq!(r.short_str().unwrap(), "x");
        assert_eq!(r.opt_str().unwrap(), None);
        assert_eq!(r.opt_str().unwrap().as_deref(), Some("y"));
        assert_eq!(r.opt_array::<3>().unwrap(), Some([1, 2, 3]));
        assert_eq!(r.opt_ip().unwrap(), Some("::1".parse().unwrap()));
        assert_eq!(r.opt_ip().unwrap(), None);
        r.finish().unwrap();
    }

    #[test]
    fn truncated_and_foreign_records_are_errors() {
        assert!(Reader::new(&[], 1).is_err());
        assert!(Reader::new(&[2], 1).is_err());
        let mut r = Reader::new(&[1, 5, 0], 1).unwrap();
        assert!(r.u64().is_err());
        let mut r = Reader::new(&[1, 9], 1).unwrap();
        assert!(r.bool().is_err());
        let mut r = Reader::new(&[1, 3, 0, b'a'], 1).unwrap();
        assert!(r.str().is_err());
        let r = Reader::new(&[1, 0], 1).unwrap();
        assert!(r.finish().is_err());
    }

    #[test]
    fn long_strings_are_cut_at_char_boundaries() {
        let s = "é".repeat(200); // 400 bytes
        let mut w = Writer::new(1);
        w.short_str(&s);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes, 1).unwrap();
        let back = r.short_str().unwrap();
        assert_eq!(back.len(), 254);
        assert!(s.starts_with(&back));
    }
}
