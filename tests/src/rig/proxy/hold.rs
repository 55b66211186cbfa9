//! Holding an upload mid-body until the test says what happens next: the proxy passes the first
//! bytes of a matching request body on to the registry, then stops reading from the client
//! until the test releases or kills it. A fault test can then act (kill the registry, kill the
//! client) at a moment it knows has come, on every run, instead of polling for a window that a
//! busy machine may skip.

use std::io::{self, BufRead, Write};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::super::http::{Framing, copy_framed, lock};

/// Where one hold is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for a matching request.
    Armed,
    /// A request matched; its first bytes are on their way.
    Taken { path: String },
    /// The first bytes were passed on and flushed; the rest of the body waits.
    Holding { path: String, forwarded: u64 },
    /// The test let the body go on (or never needed it held).
    Released,
    /// The test had the request's connections reset.
    Killed,
    /// The request broke before the hold was reached (the client or registry went away).
    Broken(String),
}

/// The proxy's side of a [`Hold`]: the rule and where it stands.
#[derive(Debug)]
pub(super) struct Held {
    bytes: u64,
    path_substring: String,
    state: Mutex<State>,
    changed: Condvar,
}

/// What the proxy does with a held body once the test has decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    Release,
    Kill,
}

impl Held {
    pub(super) fn new(bytes: u64, path_substring: &str) -> Arc<Self> {
        Arc::new(Self {
            bytes,
            path_substring: path_substring.to_string(),
            state: Mutex::new(State::Armed),
            changed: Condvar::new(),
        })
    }

    /// Takes the hold for this request if it is still armed and the request is an upload
    /// (PATCH, PUT or POST) to a path containing the rule's substring with a body of known
    /// length longer than the rule's bytes (only those can be held at a chosen byte).
    pub(super) fn take(&self, method: &str, path: &str, body: Option<u64>) -> bool {
        let upload = ["PATCH", "PUT", "POST"]
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method));
        let fits = body.is_some_and(|len| len > self.bytes);
        if !upload || !fits || !path.contains(&self.path_substring) {
            return false;
        }
        let mut state = lock(&self.state);
        if *state != State::Armed {
            return false;
        }
        *state = State::Taken {
            path: path.to_string(),
        };
        true
    }

    /// Still waiting for its request (a spent or decided hold is dropped from the proxy's list).
    pub(super) fn is_armed(&self) -> bool {
        *lock(&self.state) == State::Armed
    }

    /// Passes a body of `len` bytes from `reader` to `up`: the first bytes, a flush, then the
    /// hold until the test decides; the rest only if it releases. `Ok(Decision::Kill)` when the
    /// test killed it (the caller resets both connections).
    pub(super) fn forward<R: BufRead, W: Write>(
        &self,
        reader: &mut R,
        up: &mut W,
        len: u64,
        forwarded: impl Fn(&W) -> u64,
    ) -> io::Result<Decision> {
        let first = copy_framed(reader, up, Framing::Length(self.bytes)).and_then(|()| up.flush());
        if let Err(e) = first {
            self.set(State::Broken(format!(
                "the held request broke before {} bytes were passed on: {e}",
                self.bytes
            )));
            return Err(e);
        }
        let decision = self.reached(forwarded(up));
        if decision == Decision::Release {
            copy_framed(reader, up, Framing::Length(len - self.bytes))?;
        }
        Ok(decision)
    }

    /// Says the hold is reached, then waits for the test's decision. Never times out on its
    /// own: dropping the [`Hold`] kills it, so a failing test does not leave this waiting.
    fn reached(&self, forwarded: u64) -> Decision {
        let mut state = lock(&self.state);
        if let State::Taken { path } = &*state {
            *state = State::Holding {
                path: path.clone(),
                forwarded,
            };
            self.changed.notify_all();
        }
        let state = self
            .changed
            .wait_while(state, |s| {
                matches!(
                    s,
                    State::Armed | State::Taken { .. } | State::Holding { .. }
                )
            })
            .unwrap_or_else(PoisonError::into_inner);
        if *state == State::Killed {
            Decision::Kill
        } else {
            Decision::Release
        }
    }

    fn set(&self, new: State) {
        *lock(&self.state) = new;
        self.changed.notify_all();
    }

    /// The test's decision; `Released` and `Killed` are final, and a hold that broke stays so.
    fn decide(&self, decision: Decision) {
        let mut state = lock(&self.state);
        if matches!(*state, State::Released | State::Killed | State::Broken(_)) {
            return;
        }
        *state = match decision {
            Decision::Release => State::Released,
            Decision::Kill => State::Killed,
        };
        self.changed.notify_all();
    }
}

/// A request body held after its first bytes ([`super::FaultProxy::hold_upload_after`]).
/// Dropping it kills the request, as [`Hold::kill`] does, so a test that fails while holding
/// leaves no connection waiting.
#[derive(Debug)]
pub struct Hold(Arc<Held>);

impl Hold {
    pub(super) fn new(held: Arc<Held>) -> Self {
        Self(held)
    }

    /// Blocks until the proxy has passed the first bytes of a matching request on to the
    /// registry (flushed to its socket) and holds the rest; returns that request's path and
    /// query. `timeout` only guards against a hold that never comes: it panics, saying why.
    pub fn wait_reached(&self, timeout: Duration) -> String {
        let held = &self.0;
        let (state, waited) = held
            .changed
            .wait_timeout_while(lock(&held.state), timeout, |s| {
                matches!(s, State::Armed | State::Taken { .. })
            })
            .unwrap_or_else(PoisonError::into_inner);
        match &*state {
            State::Holding { path, forwarded } => {
                assert_eq!(*forwarded, held.bytes, "{path}: held at the wrong byte");
                path.clone()
            }
            State::Broken(why) => panic!("{why}"),
            other => {
                let why = if waited.timed_out() {
                    format!(
                        "no upload to a path containing {:?} with a body longer than {} bytes came within {timeout:?}",
                        held.path_substring, held.bytes
                    )
                } else {
                    format!("it was decided before it was reached ({other:?})")
                };
                panic!("the hold was not reached: {why}")
            }
        }
    }

    /// Lets the held body go on to the registry (a request not yet taken is no longer held).
    pub fn release(self) {
        self.0.decide(Decision::Release);
    }

    /// Resets the held request's connections, to the client and to the registry, without an
    /// answer (a request not yet taken is no longer held).
    pub fn kill(self) {
        self.0.decide(Decision::Kill);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.decide(Decision::Kill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    #[test]
    fn takes_only_the_first_upload_that_fits_and_holds_at_its_byte() {
        let held = Held::new(4, "/big/");
        assert!(!held.take("GET", "/v2/big/blobs/x", Some(10)));
        assert!(!held.take("PATCH", "/v2/big/uploads/x", Some(4)));
        assert!(!held.take("PATCH", "/v2/big/uploads/x", None));
        assert!(!held.take("PATCH", "/v2/small/uploads/x", Some(10)));
        assert!(held.take("PATCH", "/v2/big/uploads/x", Some(10)));
        assert!(!held.take("PATCH", "/v2/big/uploads/y", Some(10)));

        let hold = Hold::new(held.clone());
        let proxy = std::thread::spawn(move || {
            let mut reader = BufReader::new(&b"0123456789"[..]);
            let mut up = Vec::new();
            let decision = held.forward(&mut reader, &mut up, 10, |w| w.len() as u64);
            (decision.ok(), up)
        });
        assert_eq!(
            hold.wait_reached(Duration::from_secs(10)),
            "/v2/big/uploads/x"
        );
        hold.release();
        let (decision, up) = proxy.join().expect("proxy thread");
        assert_eq!(decision, Some(Decision::Release));
        assert_eq!(up, b"0123456789");
    }

    #[test]
    fn a_dropped_hold_kills_and_a_broken_one_says_why() {
        let held = Held::new(4, "/big/");
        assert!(held.take("PUT", "/v2/big/x", Some(10)));
        let hold = Hold::new(held.clone());
        let proxy = std::thread::spawn(move || {
            let mut up = Vec::new();
            let decision =
                held.forward(&mut BufReader::new(&b"0123456789"[..]), &mut up, 10, |w| {
                    w.len() as u64
                });
            (decision.ok(), up)
        });
        hold.wait_reached(Duration::from_secs(10));
        drop(hold);
        assert_eq!(
            proxy.join().expect("proxy thread"),
            (Some(Decision::Kill), b"0123".to_vec())
        );

        let held = Held::new(4, "/big/");
        assert!(held.take("PUT", "/v2/big/x", Some(10)));
        let hold = Hold::new(held.clone());
        let short = held.forward(&mut BufReader::new(&b"012"[..]), &mut Vec::new(), 10, |w| {
            w.len() as u64
        });
        assert!(short.is_err());
        let why = std::panic::catch_unwind(|| hold.wait_reached(Duration::from_secs(10)))
            .expect_err("a broken hold is not reached");
        let why = why.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(why.contains("broke before 4 bytes"), "{why}");
    }
}
