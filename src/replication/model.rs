//! A model run of the replication cores, shared by the property test and the
//! structure-aware fuzz target: a primary applying batches over keys of every class, a
//! secondary pulling with any batch size, stale pulls replayed from older positions,
//! full syncs paged at any size, filter changes, and the secondary's own local writes.
//!
//! [`run`] checks, after every step, that the secondary holds no local key of the
//! primary's and no key of a mount denied to it (once a filter change has been synced),
//! that a batch from a stale position is refused whole, and that the position only moves
//! forward between syncs; at the end, that once it catches up its replicated keys are
//! exactly the primary's filtered view.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use openraft::alias::LeaderIdOf;
use openraft::entry::RaftEntry;
use openraft::vote::RaftLeaderIdExt;

use super::primary::{self, Crossing, Pulled};
use super::secondary;
use crate::raft::applied_state::AppliedState;
use crate::raft::types::{Command, Entry, LogId, TypeConfig};
use crate::storage::key_space::{self, REPLICATION_STATE_KEY, Store, TableKind};
use crate::storage::{KeyClass, Op, key_class};

/// The keys the model's primary writes: every class, an allowed and a denied mount.
pub static PRIMARY_KEYS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let data = |kind, local, uuid, path: &str| {
        format!("{}{path}", key_space::mount_data_prefix(kind, local, uuid))
    };
    let stored = |store: Store, path: &str| format!("{}{path}", store.prefix());
    vec![
        data(TableKind::Secrets, false, "keep", "a"),
        data(TableKind::Secrets, false, "keep", "b"),
        data(TableKind::Secrets, false, "deny", "c"),
        key_space::mount_entry(TableKind::Secrets, false, "keep"),
        key_space::mount_entry(TableKind::Secrets, false, "deny"),
        key_space::mount_entry(TableKind::Auth, false, "users"),
        data(TableKind::Auth, false, "users", "user/bob"),
        stored(Store::Policies, "p"),
        key_space::KEYRING_KEY.to_string(),
        stored(Store::Tokens, "id/t"),
        stored(Store::Leases, "l"),
        data(TableKind::Secrets, true, "l", "x"),
        key_space::mount_entry(TableKind::Secrets, true, "l"),
    ]
});
/// A key only the secondary writes (its own token): a sync must never delete it.
static SECONDARY_LOCAL_KEY: LazyLock<String> =
    LazyLock::new(|| format!("{}id/secondary-own", Store::Tokens.prefix()));
/// A tiny buffer, so a secondary that falls behind must sync.
const WAL_ENTRIES: usize = 4;
/// The most steps one run takes (a fuzz input cannot make a run endless).
pub const STEPS_MAX: usize = 256;

/// One thing that happens in a model run.
#[derive(Debug, Clone)]
pub enum Step {
    /// A primary batch: (index into [`PRIMARY_KEYS`], value or delete).
    Primary(Vec<(usize, Option<u8>)>),
    Pull {
        max: u32,
    },
    StalePull {
        back: u64,
    },
    Sync {
        page: u32,
    },
    ToggleFilter,
    SecondaryLocal(u8),
}

impl Step {
    /// Read steps from arbitrary bytes (the fuzz target's input).
    pub fn decode(bytes: &[u8]) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut rest = bytes;
        while let [tag, argument, tail @ ..] = rest {
            rest = tail;
            let step = match tag % 6 {
                0 => {
                    let writes = (0..=(argument % 3))
                        .map(|n| {
                            let mixed = argument.wrapping_mul(31).wrapping_add(n * 17);
                            let key = mixed as usize % PRIMARY_KEYS.len();
                            let value = (mixed % 4 != 3).then_some(mixed % 3);
                            (key, value)
                        })
                        .collect();
                    Step::Primary(writes)
                }
                1 => Step::Pull {
                    max: u32::from(argument % 6) + 1,
                },
                2 => Step::StalePull {
                    back: u64::from(argument % 4),
                },
                3 => Step::Sync {
                    page: u32::from(argument % 3) + 1,
                },
                4 => Step::ToggleFilter,
                _ => Step::SecondaryLocal(argument % 3),
            };
            steps.push(step);
            if steps.len() == STEPS_MAX {
                break;
            }
        }
        steps
    }
}

struct Node {
    state: AppliedState,
    next_log_index: u64,
}

impl Node {
    /// A node of a cluster that stores a replication state, as a primary and a
    /// secondary both do (so its state keeps the Merkle index).
    fn new() -> Self {
        let mut node = Self {
            state: AppliedState::new(WAL_ENTRIES),
            next_log_index: 1,
        };
        let refused = node.apply(Command::Apply {
            ops: vec![Op::Put {
                key: REPLICATION_STATE_KEY.to_string(),
                value: b"model".to_vec().into(),
            }],
        });
        assert!(refused.is_none(), "{refused:?}");
        node
    }

    fn apply(&mut self, command: Command) -> Option<String> {
        let log_id: LogId = LogId::new(
            LeaderIdOf::<TypeConfig>::new_committed(1, "n1".to_string()),
            self.next_log_index,
        );
        self.next_log_index += 1;
        let state = std::mem::replace(&mut self.state, AppliedState::new(WAL_ENTRIES));
        let (next, applied) = state.apply(Entry::new_normal(log_id, command));
        self.state = next;
        applied.refused
    }
}

fn crossing(denying: bool) -> Crossing {
    Crossing {
        denied_mounts: if denying {
            ["deny".to_string()].into()
        } else {
            BTreeSet::new()
        },
        allowed_mounts: None,
    }
}

fn replicated(state: &AppliedState) -> BTreeMap<String, Vec<u8>> {
    state
        .iter()
        .filter(|(key, _)| key_class(key) == KeyClass::Replicated)
        .map(|(key, value)| (key.to_string(), value.to_vec()))
        .collect()
}

fn filtered(state: &AppliedState, crossing: &Crossing) -> BTreeMap<String, Vec<u8>> {
    state
        .iter()
        .filter(|(key, _)| crossing.crosses(key))
        .map(|(key, value)| (key.to_string(), value.to_vec()))
        .collect()
}

fn ensure(condition: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(what()) }
}

/// A Merkle sync as the pull loop runs it ([`secondary::MerkleSync`]), answered from a
/// view of the primary pinned at its start: the diff, fetches of `page` keys at a time,
/// then the deletes and the position in one step; the synced root must be the view's.
fn sync(
    primary: &Node,
    secondary: &mut Node,
    crossing: &Crossing,
    page: u32,
) -> Result<(), String> {
    let pinned = primary.state.clone();
    let pinned_index = pinned.merkle().ok_or("the primary keeps no Merkle index")?;
    let wal_index = pinned.wal().last_wal_index();
    let allowed = |group: &crate::storage::KeyGroup| crossing.allows_group(group);
    let mut run = secondary::MerkleSync::new(
        secondary
            .state
            .merkle()
            .ok_or("the secondary keeps no Merkle index")?,
        pinned_index.group_roots(allowed),
        wal_index,
        pinned_index.view_root(allowed),
    )
    .map_err(|error| format!("merkle diff refused honest roots: {error}"))?;
    let mut calls = 0;
    loop {
        calls += 1;
        ensure(calls < 100_000, || "the sync did not terminate".to_string())?;
        match run.next_call(page.max(1) as usize) {
            secondary::SyncCall::Merkle(requests) => {
                for request in &requests {
                    let group = request.group();
                    ensure(crossing.allows_group(group), || {
                        format!("the diff asked about group {group}, outside the view")
                    })?;
                }
                let responses = requests
                    .iter()
                    .map(|request| pinned_index.answer(request))
                    .collect();
                run.on_merkle(responses)
                    .map_err(|error| format!("merkle diff refused honest answers: {error}"))?;
            }
            secondary::SyncCall::Fetch(keys) => {
                let entries = primary::fetch(&pinned, &keys, crossing)
                    .map_err(|key| format!("the sync fetched {key}, outside the view"))?;
                let ops = run.on_fetched(entries);
                let refused = secondary.apply(Command::ApplyRemote {
                    after: None,
                    last_remote_wal: 0,
                    ops,
                });
                ensure(refused.is_none(), || {
                    format!("a sync chunk was refused: {refused:?}")
                })?;
            }
            secondary::SyncCall::Done => break,
        }
    }
    let refused = secondary.apply(Command::ApplyRemote {
        after: None,
        last_remote_wal: wal_index,
        ops: run.final_ops(),
    });
    ensure(refused.is_none(), || {
        format!("the end of a sync was refused: {refused:?}")
    })?;
    let synced_root = secondary.state.merkle().map(|merkle| merkle.root());
    ensure(synced_root == Some(run.expected_root), || {
        "after a sync the secondary's root is not the primary's view root".to_string()
    })
}

/// Pull once: `Ok(true)` when the secondary is up to date.
fn pull(
    primary: &Node,
    secondary: &mut Node,
    crossing: &Crossing,
    max: u32,
) -> Result<bool, String> {
    let position = secondary.state.last_remote_wal();
    match primary::pull(&primary.state, position, max, crossing) {
        Pulled::UpToDate => Ok(true),
        Pulled::NeedSync => sync(primary, secondary, crossing, 3).map(|()| false),
        Pulled::Wals { entries, to } => {
            ensure(to > position, || {
                format!("a pull from {position} answered up to {to}")
            })?;
            ensure(
                entries.iter().all(|entry| crossing.crosses(&entry.key)),
                || "a pull answered a key that must not cross".to_string(),
            )?;
            let refused = secondary.apply(Command::ApplyRemote {
                after: Some(position),
                last_remote_wal: to,
                ops: secondary::batch_ops(entries),
            });
            ensure(refused.is_none(), || {
                format!("a batch from the current position was refused: {refused:?}")
            })?;
            ensure(secondary.state.last_remote_wal() == to, || {
                "the position did not move with the batch".to_string()
            })?;
            Ok(false)
        }
    }
}

/// Run `steps` and check every invariant; the first violation, described.
pub fn run(steps: &[Step]) -> Result<(), String> {
    let mut primary = Node::new();
    let mut secondary = Node::new();
    let mut denying = false;
    // A filter change takes effect on the secondary at its next sync.
    let mut synced_denying = false;
    let mut synced_once = false;
    for step in steps.iter().take(STEPS_MAX) {
        let crossing = crossing(denying);
        match step {
            Step::Primary(writes) => {
                let ops = writes
                    .iter()
                    .map(|(key, value)| {
                        let key = PRIMARY_KEYS[key % PRIMARY_KEYS.len()].clone();
                        match value {
                            Some(value) => Op::Put {
                                key,
                                value: vec![*value].into(),
                            },
                            None => Op::Delete { key },
                        }
                    })
                    .collect();
                let refused = primary.apply(Command::Apply { ops });
                ensure(refused.is_none(), || {
                    "a primary batch was refused".to_string()
                })?;
            }
            Step::Pull { max } => {
                if !synced_once || synced_denying != denying {
                    sync(&primary, &mut secondary, &crossing, 2)?;
                    synced_once = true;
                    synced_denying = denying;
                } else {
                    let before = secondary.state.last_remote_wal();
                    pull(&primary, &mut secondary, &crossing, *max)?;
                    let after = secondary.state.last_remote_wal();
                    ensure(
                        after >= before || after == primary.state.wal().last_wal_index(),
                        || format!("the position went back from {before} to {after}"),
                    )?;
                }
            }
            Step::StalePull { back } => {
                let position = secondary.state.last_remote_wal();
                let older = position.saturating_sub(back + 1);
                if position > 0
                    && let Pulled::Wals { entries, to } =
                        primary::pull(&primary.state, older, 8, &crossing)
                {
                    let before = replicated(&secondary.state);
                    let refused = secondary.apply(Command::ApplyRemote {
                        after: Some(older),
                        last_remote_wal: to,
                        ops: secondary::batch_ops(entries),
                    });
                    ensure(refused.is_some(), || {
                        "a replayed batch was applied".to_string()
                    })?;
                    ensure(replicated(&secondary.state) == before, || {
                        "a refused batch changed data".to_string()
                    })?;
                    ensure(secondary.state.last_remote_wal() == position, || {
                        "a refused batch moved the position".to_string()
                    })?;
                }
            }
            Step::Sync { page } => {
                sync(&primary, &mut secondary, &crossing, (*page).max(1))?;
                synced_once = true;
                synced_denying = denying;
            }
            Step::ToggleFilter => denying = !denying,
            Step::SecondaryLocal(value) => {
                let refused = secondary.apply(Command::Apply {
                    ops: vec![Op::Put {
                        key: SECONDARY_LOCAL_KEY.clone(),
                        value: vec![*value].into(),
                    }],
                });
                ensure(refused.is_none(), || {
                    "a local write was refused".to_string()
                })?;
            }
        }
        for (key, _) in secondary.state.iter() {
            ensure(
                *key == *SECONDARY_LOCAL_KEY
                    || key == crate::storage::key_space::LAST_REMOTE_WAL_KEY
                    // Its own replication state, as every node of the model stores.
                    || key == REPLICATION_STATE_KEY
                    || key_class(key) == KeyClass::Replicated,
                || format!("the secondary holds the primary's local key {key}"),
            )?;
            if synced_once && synced_denying && denying {
                ensure(
                    key_class(key) != KeyClass::Replicated || self::crossing(true).crosses(key),
                    || format!("the secondary holds denied key {key}"),
                )?;
            }
        }
    }
    let crossing = crossing(denying);
    if synced_denying != denying || !synced_once {
        sync(&primary, &mut secondary, &crossing, 2)?;
    }
    let mut rounds = 0;
    while !pull(&primary, &mut secondary, &crossing, 3)? {
        rounds += 1;
        ensure(rounds < 10_000, || {
            "catching up did not terminate".to_string()
        })?;
    }
    ensure(
        replicated(&secondary.state) == filtered(&primary.state, &crossing),
        || "after catching up the secondary differs from its filtered view".to_string(),
    )?;
    ensure(
        secondary.state.last_remote_wal() == primary.state.wal().last_wal_index(),
        || "after catching up the position is not the primary's last WAL index".to_string(),
    )
}
