//! What must hold for XSRF tokens (SPEC §7): `Xsrf::verify`,
//! `matches_session` and `matches_anonymous` on any string.
//!
//! Input bytes are both a candidate token (as text) and the material of a
//! minted one (nonce, user id, a byte to change). For every input:
//! - nothing panics;
//! - a string that verifies for a state is the token `token()` mints for
//!   its nonce and that state, byte for byte except that the 40 hex digits
//!   may be upper case (`unhex` reads both cases; the MAC'd bytes are the
//!   same); it verifies for no other state (another user, `_lin` vs
//!   `_lout`), under no other key and for no other server id;
//! - a minted `_lin` token verifies for its user and nonce only
//!   (`matches_session`), a minted `_lout` token matches only itself as the
//!   browser's cookie (`matches_anonymous`), and neither is accepted in the
//!   other's role;
//! - the minted token with one byte changed (position and value from the
//!   input), cut short or extended, verifies for nothing, unless the change
//!   only flipped the case of a hex letter.
//!
//! This file is also compiled into `tests/it` (see `tests/it/corpus.rs`),
//! so it uses nothing but `authd`'s public API and `std`.

use authd::xsrf::{State, Xsrf};

const SERVER_ID: &str = "ABCD-EFGH-JKLM-NPQR";
const KEY: [u8; 32] = [7; 32];

/// Panics if any property above fails for `data`.
pub fn check(data: &[u8]) {
    let x = Xsrf::new(SERVER_ID, KEY);
    let user = u64::from_le_bytes(std::array::from_fn(|i| data.get(10 + i).copied().unwrap_or(0)));
    let mut states = vec![State::LoggedIn(user), State::LoggedIn(user ^ 1), State::LoggedOut];
    if user > 1 {
        states.push(State::LoggedIn(0));
    }

    check_candidate(&x, &String::from_utf8_lossy(data), &states);

    let nonce: [u8; 10] = std::array::from_fn(|i| data.get(i).copied().unwrap_or(0));
    check_minted(&x, nonce, user, data.get(18..).unwrap_or_default());
}

/// Whatever verifies is (up to hex case) exactly what `token()` mints, for one state only.
fn check_candidate(x: &Xsrf, s: &str, states: &[State]) {
    let others =
        [Xsrf::new(SERVER_ID, [8; 32]), Xsrf::new("ABCD-EFGH-JKLM-NPQS", KEY), Xsrf::new("ABCD", KEY)];
    let mut verified = 0;
    for &state in states {
        let Some(t) = x.verify(s, state) else { continue };
        verified += 1;
        let minted = x.token(t.nonce, state);
        assert!(same_up_to_hex_case(s, &minted), "{s:?} verified for {state:?}, minted {minted:?}");
        for other in &others {
            assert!(other.verify(s, state).is_none(), "{s:?} verified under {other:?}");
        }
        if let State::LoggedIn(user) = state {
            assert!(x.matches_session(s, &t.nonce, user));
        } else {
            assert!(x.matches_anonymous(s, s));
        }
    }
    // `states` holds distinct states; a MAC binds exactly one of them.
    assert!(verified <= 1, "{s:?} verified for {verified} states");
    let lout = x.verify(s, State::LoggedOut).is_some();
    assert_eq!(x.matches_anonymous(s, s), lout, "{s:?}: matches_anonymous disagrees with verify");
}

/// Minted tokens verify where they should and nowhere else, also after a change.
fn check_minted(x: &Xsrf, nonce: [u8; 10], user: u64, rest: &[u8]) {
    let lin = x.token(nonce, State::LoggedIn(user));
    let lout = x.token(nonce, State::LoggedOut);
    assert_eq!(lin.len(), SERVER_ID.len() + 1 + 40 + 4);
    assert_eq!(lout.len(), SERVER_ID.len() + 1 + 40 + 5);
    assert_eq!(x.verify(&lin, State::LoggedIn(user)).map(|t| t.nonce), Some(nonce));
    assert_eq!(x.verify(&lout, State::LoggedOut).map(|t| t.nonce), Some(nonce));
    assert!(x.matches_session(&lin, &nonce, user));
    let mut other_nonce = nonce;
    other_nonce[0] ^= 1;
    assert!(!x.matches_session(&lin, &other_nonce, user), "another session's nonce");
    assert!(!x.matches_session(&lin, &nonce, user.wrapping_add(1)), "another user");
    assert!(!x.matches_session(&lout, &nonce, user), "a _lout token as a session token");
    assert!(x.matches_anonymous(&lout, &lout));
    assert!(!x.matches_anonymous(&lin, &lin), "a _lin token as an anonymous one");
    assert!(!x.matches_anonymous(&lout, &x.token(other_nonce, State::LoggedOut)), "not the browser's own");
    let states = [State::LoggedIn(user), State::LoggedIn(user ^ 1), State::LoggedOut];
    check_candidate(x, &lin, &states);
    check_candidate(x, &lout, &states);

    for original in [&lin, &lout] {
        let at = usize::from(rest.first().copied().unwrap_or(0)) % original.len();
        let to = rest.get(1).copied().unwrap_or(b'0');
        let mut changed = original.clone().into_bytes();
        if let Some(b) = changed.get_mut(at) {
            *b = to;
        }
        let changed = String::from_utf8_lossy(&changed).into_owned();
        let mut variants = vec![changed];
        variants.push(original.get(..at).unwrap_or_default().to_string());
        variants.push(format!("{original}{}", String::from_utf8_lossy(rest.get(2..).unwrap_or_default())));
        variants.push(format!("{}{original}", String::from_utf8_lossy(rest.get(2..).unwrap_or_default())));
        for v in &variants {
            check_candidate(x, v, &states);
            if same_up_to_hex_case(v, original) {
                continue;
            }
            for &state in &states {
                assert!(x.verify(v, state).is_none(), "{v:?} (changed from {original:?}) verified");
            }
            assert!(!x.matches_session(v, &nonce, user));
            assert!(!x.matches_anonymous(v, v));
        }
    }
}

/// `a` equals `b` except for the ASCII case of characters in the 40-hex-digit
/// part after `SERVER_ID_`; the server id and the `_lin`/`_lout` suffix must match exactly.
fn same_up_to_hex_case(a: &str, b: &str) -> bool {
    let head = SERVER_ID.len() + 1;
    let (Some((a_head, a_rest)), Some((b_head, b_rest))) =
        (a.split_at_checked(head), b.split_at_checked(head))
    else {
        return a == b;
    };
    let (Some((a_hex, a_tail)), Some((b_hex, b_tail))) =
        (a_rest.split_at_checked(40), b_rest.split_at_checked(40))
    else {
        return a == b;
    };
    a_head == b_head && a_tail == b_tail && a_hex.eq_ignore_ascii_case(b_hex)
}
