//! The oracle: every read and write the workload makes, with its invocation and
//! completion times (simulated), and the checks over that history.
//!
//! Each key is a single register. Values are unique per write (`c<client>-n<seq>`), a
//! delete writes "absent" (`None`), and the register starts absent. A write's outcome is
//! `Ok` (acknowledged: it took effect between invocation and completion), `Refused` (a
//! clear 4xx: it must never take effect) or `Unknown` (no answer, a 5xx: it may take
//! effect at any time after its invocation, even after the run's faults healed).
//!
//! The checks, per register:
//! - no phantom: a read returns only a value some non-refused write invoked before the
//!   read completed could have produced;
//! - no stale read (linearizability of a register, in the form a checker can decide in
//!   polynomial time because values are unique): a read may return the value of write
//!   `w` only if no acknowledged write began after `w` was acknowledged and was itself
//!   acknowledged before the read began. Reads after the run are ordinary reads, so the
//!   same rule says no acknowledged write was lost;
//! - CAS honoured: two acknowledged check-and-set writes never name the same version.
//!
//! Tokens the workload creates are checked too: a token whose revocation was
//! acknowledged never authorizes a request made after it; a token whose TTL has passed
//! (by more than the clock skew the faults may inject) never authorizes one; and a token
//! whose creation was acknowledged is never refused while it is neither revoked nor
//! near its expiry (that would be a lost acknowledged write).

use std::collections::BTreeMap;

/// What the client learned of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Ok,
    Refused,
    Unknown,
}

/// Which part of the run an operation belongs to: faults on, or healed (liveness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Faults,
    Healed,
    Final,
}

#[derive(Debug, Clone)]
pub struct Write {
    pub register: String,
    /// `None` for a delete.
    pub value: Option<String>,
    /// The version a check-and-set write named, if it was one.
    pub cas: Option<u64>,
    pub invoked_us: u64,
    pub completed_us: u64,
    pub outcome: WriteOutcome,
    pub phase: Phase,
    pub client: usize,
}

#[derive(Debug, Clone)]
pub struct Read {
    pub register: String,
    /// `None` when the key was absent (404).
    pub value: Option<String>,
    pub invoked_us: u64,
    pub completed_us: u64,
    pub phase: Phase,
    pub client: usize,
    /// The node the read went to, for the report.
    pub node: String,
}

/// A token the workload created (its creation was acknowledged).
#[derive(Debug, Clone)]
pub struct TokenLife {
    /// The harness's name for it (`c<client>-t<n>`), for the report.
    pub label: String,
    /// The token itself, so the run can present it again at the end.
    pub secret: String,
    pub created_invoked_us: u64,
    pub created_completed_us: u64,
    /// Its TTL, when it has a short one (a lease that must expire).
    pub ttl_ms: Option<u64>,
    /// Its revocation, once one was asked for.
    pub revocation: Option<Revocation>,
}

#[derive(Debug, Clone, Copy)]
pub struct Revocation {
    pub invoked_us: u64,
    pub completed_us: u64,
    pub outcome: WriteOutcome,
}

/// One request made with a created token, and whether the server let it through
/// (only definite answers are recorded: authorized, or 403).
#[derive(Debug, Clone)]
pub struct TokenUse {
    pub label: String,
    pub invoked_us: u64,
    pub completed_us: u64,
    pub authorized: bool,
    pub phase: Phase,
    pub client: usize,
    pub node: String,
}

#[derive(Debug, Default, Clone)]
pub struct History {
    pub writes: Vec<Write>,
    pub reads: Vec<Read>,
    pub tokens: Vec<TokenLife>,
    pub token_uses: Vec<TokenUse>,
    /// How far from its TTL a token's expiry may be seen (microseconds): twice the
    /// largest clock jump (creator ahead, checker behind) and the server's rounding of
    /// expiry times to whole seconds.
    pub expiry_slack_us: u64,
}

/// Reported violations are capped so a badly broken run stays readable.
pub const VIOLATIONS_REPORTED_MAX: usize = 20;

/// The share of healed-phase writes acknowledged, and how many there were.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Liveness {
    pub healed_writes: usize,
    pub healed_acknowledged: usize,
}

impl History {
    pub fn acknowledged_writes(&self) -> usize {
        self.writes
            .iter()
            .filter(|write| write.outcome == WriteOutcome::Ok)
            .count()
    }

    pub fn liveness(&self) -> Liveness {
        let healed: Vec<&Write> = self
            .writes
            .iter()
            .filter(|write| write.phase == Phase::Healed)
            .collect();
        Liveness {
            healed_writes: healed.len(),
            // A check-and-set refused because another client's write came first is a
            // definite, correct answer: it counts as served.
            healed_acknowledged: healed
                .iter()
                .filter(|write| {
                    write.outcome == WriteOutcome::Ok
                        || (write.outcome == WriteOutcome::Refused && write.cas.is_some())
                })
                .count(),
        }
    }

    /// Every safety violation in the history (at most [`VIOLATIONS_REPORTED_MAX`]).
    pub fn check(&self) -> Vec<String> {
        let mut writes_by_register: BTreeMap<&str, Vec<&Write>> = BTreeMap::new();
        for write in &self.writes {
            writes_by_register
                .entry(write.register.as_str())
                .or_default()
                .push(write);
        }
        let mut violations = Vec::new();
        for read in &self.reads {
            let writes = writes_by_register
                .get(read.register.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if let Some(violation) = check_read(read, writes) {
                violations.push(violation);
            }
        }
        for (register, writes) in &writes_by_register {
            let mut by_version: BTreeMap<u64, &Write> = BTreeMap::new();
            for write in writes
                .iter()
                .filter(|write| write.outcome == WriteOutcome::Ok)
            {
                let Some(version) = write.cas else { continue };
                if let Some(earlier) = by_version.insert(version, write) {
                    violations.push(format!(
                        "CAS not honoured on {register}: {:?} and {:?} both acknowledged with cas={version}",
                        earlier.value, write.value
                    ));
                }
            }
        }
        violations.extend(self.check_tokens());
        violations.truncate(VIOLATIONS_REPORTED_MAX);
        violations
    }

    /// The token checks (see the module's documentation).
    fn check_tokens(&self) -> Vec<String> {
        let mut violations = Vec::new();
        let by_label: BTreeMap<&str, &TokenLife> = self
            .tokens
            .iter()
            .map(|token| (token.label.as_str(), token))
            .collect();
        for used in &self.token_uses {
            let Some(token) = by_label.get(used.label.as_str()) else {
                continue;
            };
            let describe = || {
                format!(
                    "client {} used token {} via {} during [{}us, {}us] ({:?} phase)",
                    used.client,
                    used.label,
                    used.node,
                    used.invoked_us,
                    used.completed_us,
                    used.phase
                )
            };
            let revoked_before = token.revocation.filter(|revocation| {
                revocation.outcome == WriteOutcome::Ok && revocation.completed_us < used.invoked_us
            });
            let revoke_asked_by_end = token
                .revocation
                .is_some_and(|revocation| revocation.invoked_us < used.completed_us);
            let ttl_us = token.ttl_ms.map(|ttl| ttl * 1000);
            if used.authorized {
                if let Some(revocation) = revoked_before {
                    violations.push(format!(
                        "revoked token authorized a request: {}, after its revocation was acknowledged at {}us",
                        describe(),
                        revocation.completed_us
                    ));
                } else if let Some(ttl_us) = ttl_us
                    && used.invoked_us >= token.created_completed_us + ttl_us + self.expiry_slack_us
                {
                    violations.push(format!(
                        "expired token authorized a request: {}, created by {}us with a TTL of {}ms",
                        describe(),
                        token.created_completed_us,
                        ttl_us / 1000
                    ));
                }
            } else if !revoke_asked_by_end
                && used.invoked_us > token.created_completed_us
                && ttl_us.is_none_or(|ttl_us| {
                    used.completed_us + self.expiry_slack_us < token.created_invoked_us + ttl_us
                })
            {
                violations.push(format!(
                    "acknowledged token refused (lost): {}, created by {}us, never revoked",
                    describe(),
                    token.created_completed_us
                ));
            }
        }
        violations
    }
}

/// When a write may have taken effect at the latest: an acknowledged write by its
/// completion; a write of unknown outcome at any time.
fn effective_by_us(write: &Write) -> u64 {
    match write.outcome {
        WriteOutcome::Ok => write.completed_us,
        WriteOutcome::Refused | WriteOutcome::Unknown => u64::MAX,
    }
}

fn check_read(read: &Read, writes: &[&Write]) -> Option<String> {
    // Candidates: writes of the value read that could have produced it. The register
    // starts absent, as if a write of `None` was acknowledged at time zero.
    let initial = Write {
        register: read.register.clone(),
        value: None,
        cas: None,
        invoked_us: 0,
        completed_us: 0,
        outcome: WriteOutcome::Ok,
        phase: Phase::Faults,
        client: usize::MAX,
    };
    let same_value = writes
        .iter()
        .copied()
        .chain(std::iter::once(&initial))
        .filter(|write| write.value == read.value);
    let candidates: Vec<&Write> = same_value
        .clone()
        .filter(|write| write.outcome != WriteOutcome::Refused)
        .filter(|write| write.invoked_us < read.completed_us)
        .collect();
    let describe = || {
        format!(
            "client {} read {}={:?} via {} during [{}us, {}us] ({:?} phase)",
            read.client,
            read.register,
            read.value,
            read.node,
            read.invoked_us,
            read.completed_us,
            read.phase
        )
    };
    if candidates.is_empty() {
        let refused = same_value
            .clone()
            .any(|write| write.outcome == WriteOutcome::Refused);
        return Some(if refused {
            format!("refused write took effect: {}", describe())
        } else {
            format!("phantom value: {}", describe())
        });
    }
    // The value is fresh enough if some candidate was not yet overwritten, for sure,
    // when the read began.
    let superseded_by = |candidate: &Write| -> Option<&Write> {
        let effective = effective_by_us(candidate);
        writes.iter().copied().find(|other| {
            other.outcome == WriteOutcome::Ok
                && other.invoked_us > effective
                && other.completed_us < read.invoked_us
        })
    };
    let mut newest_overwrite: Option<&Write> = None;
    for candidate in &candidates {
        match superseded_by(candidate) {
            None => return None,
            Some(other) => newest_overwrite = Some(other),
        }
    }
    let overwrite = newest_overwrite.expect("candidates is not empty");
    Some(format!(
        "stale read: {}, but {:?} was acknowledged at {}us (client {}), after the value read was",
        describe(),
        overwrite.value,
        overwrite.completed_us,
        overwrite.client
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(value: Option<&str>, span: (u64, u64), outcome: WriteOutcome) -> Write {
        Write {
            register: "k".into(),
            value: value.map(str::to_string),
            cas: None,
            invoked_us: span.0,
            completed_us: span.1,
            outcome,
            phase: Phase::Faults,
            client: 0,
        }
    }

    fn read(value: Option<&str>, span: (u64, u64)) -> Read {
        Read {
            register: "k".into(),
            value: value.map(str::to_string),
            invoked_us: span.0,
            completed_us: span.1,
            phase: Phase::Faults,
            client: 1,
            node: "node-1".into(),
        }
    }

    fn check(writes: Vec<Write>, reads: Vec<Read>) -> Vec<String> {
        History {
            writes,
            reads,
            ..Default::default()
        }
        .check()
    }

    fn token(ttl_ms: Option<u64>, revocation: Option<(u64, u64, WriteOutcome)>) -> TokenLife {
        TokenLife {
            label: "c0-t0".into(),
            secret: "s".into(),
            created_invoked_us: 100,
            created_completed_us: 200,
            ttl_ms,
            revocation: revocation.map(|(invoked_us, completed_us, outcome)| Revocation {
                invoked_us,
                completed_us,
                outcome,
            }),
        }
    }

    fn used(span: (u64, u64), authorized: bool) -> TokenUse {
        TokenUse {
            label: "c0-t0".into(),
            invoked_us: span.0,
            completed_us: span.1,
            authorized,
            phase: Phase::Faults,
            client: 0,
            node: "node-1".into(),
        }
    }

    fn check_tokens(token: TokenLife, uses: Vec<TokenUse>) -> Vec<String> {
        History {
            tokens: vec![token],
            token_uses: uses,
            expiry_slack_us: 1_000,
            ..Default::default()
        }
        .check()
    }

    #[test]
    fn a_revoked_token_never_authorizes_a_later_request() {
        let revoked = || Some((1_000, 2_000, WriteOutcome::Ok));
        // Refused after the revocation: correct.
        assert!(check_tokens(token(None, revoked()), vec![used((3_000, 3_100), false)]).is_empty());
        // Authorized while the revocation was under way: allowed.
        assert!(check_tokens(token(None, revoked()), vec![used((1_500, 1_600), true)]).is_empty());
        // Authorized after it was acknowledged: a violation.
        let found = check_tokens(token(None, revoked()), vec![used((3_000, 3_100), true)]);
        assert!(
            found[0].starts_with("revoked token authorized"),
            "{found:?}"
        );
        // A revocation of unknown outcome proves nothing either way.
        let unknown = Some((1_000, 2_000, WriteOutcome::Unknown));
        assert!(check_tokens(token(None, unknown), vec![used((3_000, 3_100), true)]).is_empty());
        assert!(check_tokens(token(None, unknown), vec![used((3_000, 3_100), false)]).is_empty());
    }

    #[test]
    fn a_token_expires_after_its_ttl_and_not_long_before() {
        // TTL 10 ms from creation by 200us, slack 1 ms: must be refused from 11.2 ms on.
        let lease = || token(Some(10), None);
        assert!(check_tokens(lease(), vec![used((5_000, 5_100), true)]).is_empty());
        assert!(check_tokens(lease(), vec![used((11_300, 11_400), false)]).is_empty());
        let found = check_tokens(lease(), vec![used((11_300, 11_400), true)]);
        assert!(
            found[0].starts_with("expired token authorized"),
            "{found:?}"
        );
        // Refused well before its TTL: the acknowledged token was lost.
        let found = check_tokens(lease(), vec![used((1_000, 1_100), false)]);
        assert!(
            found[0].starts_with("acknowledged token refused"),
            "{found:?}"
        );
        // Refused close to its TTL: within the slack, allowed.
        assert!(check_tokens(lease(), vec![used((9_500, 9_600), false)]).is_empty());
    }

    #[test]
    fn fresh_and_concurrent_reads_pass() {
        let writes = vec![
            write(Some("a"), (10, 20), WriteOutcome::Ok),
            write(Some("b"), (30, 40), WriteOutcome::Ok),
        ];
        // Before any write, during b (either value), after b.
        let reads = vec![
            read(None, (1, 5)),
            read(Some("a"), (35, 38)),
            read(Some("b"), (35, 38)),
            read(Some("b"), (50, 60)),
        ];
        assert!(check(writes, reads).is_empty());
    }

    #[test]
    fn a_value_older_than_an_acknowledged_write_is_stale() {
        let writes = vec![
            write(Some("a"), (10, 20), WriteOutcome::Ok),
            write(Some("b"), (30, 40), WriteOutcome::Ok),
        ];
        let violations = check(writes.clone(), vec![read(Some("a"), (50, 60))]);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].starts_with("stale read"), "{violations:?}");
        // An acknowledged delete counts the same; and a lost write is a stale final read.
        let mut with_delete = writes;
        with_delete.push(write(None, (70, 80), WriteOutcome::Ok));
        assert!(
            check(with_delete.clone(), vec![read(Some("b"), (90, 95))])[0]
                .starts_with("stale read")
        );
        assert!(check(with_delete, vec![read(None, (90, 95))]).is_empty());
    }

    #[test]
    fn unknown_writes_may_land_late_and_refused_ones_never() {
        let writes = vec![
            write(Some("a"), (10, 20), WriteOutcome::Unknown),
            write(Some("b"), (30, 40), WriteOutcome::Ok),
            write(Some("c"), (50, 55), WriteOutcome::Refused),
        ];
        assert!(check(writes.clone(), vec![read(Some("a"), (100, 110))]).is_empty());
        let refused = check(writes.clone(), vec![read(Some("c"), (100, 110))]);
        assert!(
            refused[0].starts_with("refused write took effect"),
            "{refused:?}"
        );
        let phantom = check(writes.clone(), vec![read(Some("zzz"), (100, 110))]);
        assert!(phantom[0].starts_with("phantom value"), "{phantom:?}");
        // A value from the future: its write began after the read completed.
        let future = check(writes, vec![read(Some("b"), (1, 5))]);
        assert!(future[0].starts_with("phantom value"), "{future:?}");
    }

    #[test]
    fn two_acknowledged_cas_writes_of_one_version_are_caught() {
        let mut first = write(Some("a"), (10, 20), WriteOutcome::Ok);
        first.cas = Some(3);
        let mut second = write(Some("b"), (30, 40), WriteOutcome::Ok);
        second.cas = Some(3);
        let violations = check(vec![first, second], vec![]);
        assert!(
            violations[0].starts_with("CAS not honoured"),
            "{violations:?}"
        );
    }

    #[test]
    fn liveness_counts_only_the_healed_phase() {
        let mut healed = write(Some("a"), (10, 20), WriteOutcome::Ok);
        healed.phase = Phase::Healed;
        let mut healed_failed = write(Some("b"), (10, 20), WriteOutcome::Unknown);
        healed_failed.phase = Phase::Healed;
        let history = History {
            writes: vec![
                healed,
                healed_failed,
                write(Some("c"), (1, 2), WriteOutcome::Ok),
            ],
            reads: vec![],
            ..Default::default()
        };
        assert_eq!(
            history.liveness(),
            Liveness {
                healed_writes: 2,
                healed_acknowledged: 1
            }
        );
        assert_eq!(history.acknowledged_writes(), 2);
    }
}
