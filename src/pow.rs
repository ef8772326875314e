//! The login page's proof-of-work challenge (SPEC §3): what lets a person
//! through at once while an account demands a challenge.
//!
//! A challenge is a self-contained, MAC'd string: 16 random bytes, the
//! subject (a hash of the lower-cased user name, so unknown names get
//! challenges too), an expiry and the difficulty. A solution is a decimal
//! counter such that SHA-256(`challenge` `:` `counter`) starts with
//! `difficulty` zero bits; the page's script finds it with WebCrypto in
//! about a second, the server checks it with one hash. Each challenge is
//! accepted once: used ones are remembered until they expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::token::{b64, b64_exact, ct_eq, random};

/// Used challenges remembered before expired ones are cleared out.
const USED_SWEEP_AT: usize = 4096;
/// Most used challenges remembered (each is at most ten minutes old).
const USED_MAX: usize = 200_000;

/// Bytes in a challenge: nonce 16, subject 16, expiry 8, difficulty 1, MAC 16.
const LEN: usize = 16 + 16 + 8 + 1 + 16;

/// Why a solution was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowError {
    /// Not a challenge this server issued (or damaged).
    Malformed,
    /// Issued for another user.
    WrongSubject,
    /// Too old.
    Expired,
    /// The hash does not have enough leading zero bits.
    Unsolved,
    /// Already used.
    Replayed,
}

/// Issues and checks challenges.
pub struct Pow {
    key: [u8; 32],
    /// Leading zero bits required.
    pub difficulty: u8,
    ttl: Duration,
    used: Mutex<HashMap<[u8; 16], Timestamp>>,
}

impl Pow {
    /// Challenges keyed by `key`, needing `difficulty` zero bits, valid for `ttl`.
    pub fn new(key: [u8; 32], difficulty: u8, ttl: Duration) -> Self {
        Pow { key, difficulty: difficulty.min(32), ttl, used: Mutex::new(HashMap::new()) }
    }

    /// The subject of a user name (case-insensitive).
    pub fn subject(name: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        let mut h = blake3::Hasher::new_derive_key("authd 2026-11 challenge subject");
        h.update(name.to_lowercase().as_bytes());
        h.finalize_xof().fill(&mut out);
        out
    }

    /// A new challenge for `subject`.
    pub fn issue(&self, subject: [u8; 16], now: Timestamp) -> String {
        let nonce: [u8; 16] = random();
        let expires = now.plus(self.ttl).0.to_le_bytes();
        let mut raw = Vec::with_capacity(LEN);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&subject);
        raw.extend_from_slice(&expires);
        raw.push(self.difficulty);
        let mac = self.mac(&raw);
        raw.extend_from_slice(&mac);
        b64(&raw)
    }

    /// Checks `solution` for `challenge` and `subject`; consumes the challenge.
    pub fn verify(
        &self,
        challenge: &str,
        solution: &str,
        subject: [u8; 16],
        now: Timestamp,
    ) -> Result<(), PowError> {
        let raw: [u8; LEN] = b64_exact(challenge).ok_or(PowError::Malformed)?;
        let (body, mac) = raw.split_at(LEN - 16);
        if !ct_eq(mac, &self.mac(body)) {
            return Err(PowError::Malformed);
        }
        let field = |from: usize, to: usize| body.get(from..to).ok_or(PowError::Malformed);
        let nonce: [u8; 16] = field(0, 16)?.try_into().map_err(|_| PowError::Malformed)?;
        if !ct_eq(field(16, 32)?, &subject) {
            return Err(PowError::WrongSubject);
        }
        let expires: [u8; 8] = field(32, 40)?.try_into().map_err(|_| PowError::Malformed)?;
        let expires = Timestamp(u64::from_le_bytes(expires));
        if now >= expires {
            return Err(PowError::Expired);
        }
        let difficulty = *field(40, 41)?.first().ok_or(PowError::Malformed)?;
        if solution.len() > 20 || !solution.bytes().all(|b| b.is_ascii_digit()) || solution.is_empty() {
            return Err(PowError::Unsolved);
        }
        let digest =
            ring::digest::digest(&ring::digest::SHA256, format!("{challenge}:{solution}").as_bytes());
        if leading_zero_bits(digest.as_ref()) < u32::from(difficulty) {
            return Err(PowError::Unsolved);
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if used.len() >= USED_SWEEP_AT {
            used.retain(|_, exp| now < *exp);
        }
        // A full table cannot prove a challenge unused: refuse rather than risk a replay.
        if used.len() >= USED_MAX || used.insert(nonce, expires).is_some() {
            return Err(PowError::Replayed);
        }
        Ok(())
    }

    fn mac(&self, body: &[u8]) -> [u8; 16] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(b"pow");
        h.update(body);
        let mut out = [0u8; 16];
        h.finalize_xof().fill(&mut out);
        out
    }
}

/// Leading zero bits of a byte string.
pub fn leading_zero_bits(bytes: &[u8]) -> u32 {
    let mut n = 0;
    for b in bytes {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

/// Solves a challenge by brute force (what the page's script does).
pub fn solve(challenge: &str, difficulty: u8) -> String {
    (0u64..)
        .map(|i| i.to_string())
        .find(|c| {
            let d = ring::digest::digest(&ring::digest::SHA256, format!("{challenge}:{c}").as_bytes());
            leading_zero_bits(d.as_ref()) >= u32::from(difficulty)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pow() -> Pow {
        Pow::new([4; 32], 8, Duration::from_secs(120))
    }

    #[test]
    fn a_solved_challenge_passes_once() {
        let p = pow();
        let subject = Pow::subject("Alice");
        let c = p.issue(subject, Timestamp(1000));
        let s = solve(&c, 8);
        assert_eq!(p.verify(&c, &s, Pow::subject("alice"), Timestamp(2000)), Ok(()));
        assert_eq!(p.verify(&c, &s, subject, Timestamp(2000)), Err(PowError::Replayed));
    }

    #[test]
    fn wrong_subject_expiry_solution_and_forgery_fail() {
        let p = pow();
        let c = p.issue(Pow::subject("alice"), Timestamp(1000));
        let s = solve(&c, 8);
        assert_eq!(p.verify(&c, &s, Pow::subject("bob"), Timestamp(2000)), Err(PowError::WrongSubject));
        assert_eq!(p.verify(&c, &s, Pow::subject("alice"), Timestamp(121_000)), Err(PowError::Expired));
        let bad = (0u64..).map(|i| i.to_string()).find(|x| {
            let d = ring::digest::digest(&ring::digest::SHA256, format!("{c}:{x}").as_bytes());
            leading_zero_bits(d.as_ref()) < 8
        });
        assert_eq!(
            p.verify(&c, &bad.unwrap(), Pow::subject("alice"), Timestamp(2000)),
            Err(PowError::Unsolved)
        );
        assert_eq!(p.verify(&c, "12a", Pow::subject("alice"), Timestamp(2000)), Err(PowError::Unsolved));
        let other = Pow::new([5; 32], 8, Duration::from_secs(120));
        assert_eq!(other.verify(&c, &s, Pow::subject("alice"), Timestamp(2000)), Err(PowError::Malformed));
        assert_eq!(p.verify("junk", &s, Pow::subject("alice"), Timestamp(2000)), Err(PowError::Malformed));
    }

    #[test]
    fn zero_bits() {
        assert_eq!(leading_zero_bits(&[0, 0, 0x80]), 16);
        assert_eq!(leading_zero_bits(&[0, 0x0f]), 12);
        assert_eq!(leading_zero_bits(&[0xff]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }
}
