//! The proxy's faults beyond fixed error statuses, driven by events rather than timing: upload
//! bodies cut after a number of bytes, and random faults drawn from a seeded generator (so
//! which share of requests fails depends on the seed alone; which request gets which fault
//! also depends on the order the client's parallel requests arrive in).

/// Random faults on every request while armed: each request is, by one draw, answered with
/// `status` without being forwarded (`error_rate`), has its connection reset without an answer
/// (`reset_rate`), or is forwarded untouched.
///
/// A reset cuts a request with a body in the middle of it (at a random byte) half the time;
/// otherwise, and for requests without a body, the request is forwarded whole and the
/// connection closed once the registry has answered: whatever the request did is done, only
/// its answer is lost (a PUT that committed, say).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomFaults {
    pub seed: u64,
    /// Share of requests answered with `status`, in 0..=1.
    pub error_rate: f64,
    /// Share of requests whose connection is reset without an answer, in 0..=1.
    pub reset_rate: f64,
    pub status: u16,
}

impl RandomFaults {
    /// `error_rate` of requests answered 500, `reset_rate` reset.
    pub fn new(seed: u64, error_rate: f64, reset_rate: f64) -> Self {
        Self {
            seed,
            error_rate,
            reset_rate,
            status: 500,
        }
    }
}

/// The faults injected so far, by kind (fixed [`super::Failure`] rules not included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Injected {
    /// Requests answered with the random fault's status.
    pub errors: u64,
    /// Request bodies cut short, the connection reset ([`super::FaultProxy::cut_upload_after`]
    /// and random resets).
    pub cuts: u64,
    /// Requests forwarded whole whose answer never reached the client.
    pub lost_answers: u64,
}

/// One `cut_upload_after` rule.
#[derive(Debug, Clone)]
pub(super) struct Cut {
    pub bytes: u64,
    pub path_substring: String,
    pub times: usize,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Forward,
    /// Answer with this status, not forwarded.
    Error(u16),
    /// Forward the head and this many body bytes, then reset both connections.
    CutAfter(u64),
    /// Forward the whole request, wait for the registry's answer, then close without passing
    /// it on.
    LoseAnswer,
}

/// The armed cut rules and random faults, with what they injected.
#[derive(Debug, Default)]
pub(super) struct Chaos {
    random: Option<(RandomFaults, Xorshift)>,
    pub cuts: Vec<Cut>,
    pub injected: Injected,
}

impl Chaos {
    pub fn arm_random(&mut self, faults: RandomFaults) {
        self.random = Some((faults, Xorshift::new(faults.seed)));
    }

    /// The action for a request; `body` is its body's length when it has one of known length
    /// (only those can be cut at a chosen byte).
    pub fn decide(&mut self, method: &str, path: &str, body: Option<u64>) -> Action {
        let upload = ["PATCH", "PUT", "POST"]
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method));
        if upload
            && let Some(len) = body
            && let Some(cut) = self
                .cuts
                .iter_mut()
                .find(|c| c.times > 0 && len > c.bytes && path.contains(&c.path_substring))
        {
            cut.times -= 1;
            self.injected.cuts += 1;
            return Action::CutAfter(cut.bytes);
        }
        let Some((faults, rng)) = &mut self.random else {
            return Action::Forward;
        };
        let draw = rng.unit();
        if draw < faults.error_rate {
            self.injected.errors += 1;
            return Action::Error(faults.status);
        }
        if draw < faults.error_rate + faults.reset_rate {
            if let Some(len) = body.filter(|&n| n > 0)
                && rng.next_u64() % 2 == 0
            {
                self.injected.cuts += 1;
                return Action::CutAfter(rng.next_u64() % len);
            }
            self.injected.lost_answers += 1;
            return Action::LoseAnswer;
        }
        Action::Forward
    }
}

/// xorshift64*: small, fast, and plenty for choosing faults (no new crate for it).
#[derive(Debug, Clone)]
pub(super) struct Xorshift(u64);

impl Xorshift {
    pub fn new(seed: u64) -> Self {
        // Any seed but zero works; mix it so nearby seeds give unrelated sequences.
        Self((seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_faults_hit_their_shares_and_depend_on_the_seed_alone() {
        let run = |seed| {
            let mut chaos = Chaos::default();
            chaos.arm_random(RandomFaults::new(seed, 0.2, 0.05));
            let actions: Vec<Action> = (0..20_000)
                .map(|i| chaos.decide("PUT", "/v2/a/blobs/uploads/x", (i % 2 == 0).then_some(100)))
                .collect();
            (actions, chaos.injected)
        };
        let (a, injected) = run(7);
        assert_eq!(run(7).0, a);
        assert_ne!(run(8).0, a);
        let share = |n: u64| n as f64 / 20_000.0;
        assert!((share(injected.errors) - 0.2).abs() < 0.02, "{injected:?}");
        let resets = injected.cuts + injected.lost_answers;
        assert!((share(resets) - 0.05).abs() < 0.01, "{injected:?}");
        assert!(injected.cuts > 0 && injected.lost_answers > injected.cuts);
        assert!(a.iter().all(|x| match x {
            Action::CutAfter(n) => *n < 100,
            _ => true,
        }));
    }

    #[test]
    fn cuts_take_uploads_longer_than_their_point_as_often_as_asked() {
        let mut chaos = Chaos::default();
        chaos.cuts.push(Cut {
            bytes: 10,
            path_substring: "/big/".into(),
            times: 2,
        });
        assert_eq!(
            chaos.decide("GET", "/v2/big/blobs/x", Some(50)),
            Action::Forward
        );
        assert_eq!(
            chaos.decide("PATCH", "/v2/big/x", Some(10)),
            Action::Forward
        );
        assert_eq!(
            chaos.decide("PATCH", "/v2/small/x", Some(50)),
            Action::Forward
        );
        assert_eq!(
            chaos.decide("PATCH", "/v2/big/x", Some(50)),
            Action::CutAfter(10)
        );
        assert_eq!(
            chaos.decide("PUT", "/v2/big/x", Some(50)),
            Action::CutAfter(10)
        );
        assert_eq!(chaos.decide("PUT", "/v2/big/x", Some(50)), Action::Forward);
        assert_eq!(chaos.injected.cuts, 2);
    }
}
