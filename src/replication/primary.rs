//! The primary's answers, as pure functions of a point-in-time view of its applied
//! state and the asking secondary's filter: which WAL entries cross, and which keys a
//! sync page holds. The shell (`manager.rs`) pins views, waits and signs nothing: it
//! only calls these.

use std::collections::BTreeSet;

use super::protocol::{ANSWER_BYTES_MAX, FetchedKeys, WireEntry};
use crate::raft::applied_state::AppliedState;
use crate::storage::{KeyClass, KeyGroup, classify};

/// Which replicated keys cross to one secondary.
///
/// Without a filter, every replicated key. With one, only keys of the mounts it was
/// judged to allow when the crossing was computed: a mount it has not judged (created
/// since, or deleted before, with entries still in the WAL) is not known to be allowed,
/// so its values do not cross. Deletes of such a mount's keys do cross: removing a key
/// never leaks one, and it is how a secondary learns a mount went away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Crossing {
    /// The uuids of the mounts the secondary's filter denies.
    pub denied_mounts: BTreeSet<String>,
    /// With a filter: the uuids of the mounts it allows; `None` without a filter.
    pub allowed_mounts: Option<BTreeSet<String>>,
}

impl Crossing {
    fn mount_crosses(&self, uuid: &str, deleting: bool) -> bool {
        if self.denied_mounts.contains(uuid) {
            return false;
        }
        match &self.allowed_mounts {
            None => true,
            Some(allowed) => deleting || allowed.contains(uuid),
        }
    }

    /// Whether a replicated group crosses: a core group always, a mount as its values do.
    pub fn allows_group(&self, group: &KeyGroup) -> bool {
        match group {
            KeyGroup::Mount(uuid) => self.mount_crosses(uuid, false),
            KeyGroup::Core(_) => true,
        }
    }

    /// Whether a value of `key` crosses: it is replicated, and its mount (if any) is
    /// allowed. Local and ignored keys never cross, whatever the filter.
    pub fn crosses(&self, key: &str) -> bool {
        self.change_crosses(key, false)
    }

    /// Whether a change of `key` crosses: a value as [`Crossing::crosses`] says; a
    /// delete unless its mount is denied.
    pub fn change_crosses(&self, key: &str, deleting: bool) -> bool {
        use crate::seeded_bugs::{SeededBug, enabled};
        if enabled(SeededBug::IgnorePathsFilter)
            && matches!(classify(key), Ok((KeyClass::Replicated, _)))
        {
            return true;
        }
        match classify(key) {
            Ok((KeyClass::Replicated, KeyGroup::Mount(uuid))) => {
                self.mount_crosses(&uuid, deleting)
            }
            Ok((KeyClass::Replicated, KeyGroup::Core(_))) => true,
            _ => false,
        }
    }
}

/// The answer to a pull, before the shell adds the primary's heartbeat facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    /// The crossing entries in `(after, to]`.
    Wals { entries: Vec<WireEntry>, to: u64 },
    /// Nothing after `after` yet.
    UpToDate,
    /// `after` is not a position this buffer can continue (it left the buffer, or it
    /// is ahead of this primary): the secondary must sync.
    NeedSync,
}

/// The entries after WAL index `after` that cross, at most `max_entries` of the WAL's
/// (crossing or not) and about [`ANSWER_BYTES_MAX`] bytes.
pub fn pull(view: &AppliedState, after: u64, max_entries: u32, crossing: &Crossing) -> Pulled {
    let wal = view.wal();
    if after == wal.last_wal_index() {
        return Pulled::UpToDate;
    }
    let Some(newer) = wal.entries_after(after) else {
        if after < wal.last_wal_index() {
            crate::coverage::mark("replication-position-left-buffer");
        }
        return Pulled::NeedSync;
    };
    let mut entries = Vec::new();
    let mut to = after;
    let mut bytes = 0;
    for entry in newer.take(max_entries.max(1) as usize) {
        let size = entry.key.len() + entry.value.as_ref().map_or(0, |value| value.len());
        if bytes + size > ANSWER_BYTES_MAX && to > after {
            break;
        }
        to = entry.wal_index;
        if crossing.change_crosses(&entry.key, entry.value.is_none()) {
            bytes += size;
            entries.push(WireEntry {
                wal_index: entry.wal_index,
                key: entry.key.to_string(),
                value: entry.value.as_ref().map(|value| value.to_vec()),
            });
        }
    }
    Pulled::Wals { entries, to }
}

/// The values in `view` of `keys` that cross, in order, as many as fit in about
/// [`ANSWER_BYTES_MAX`] bytes (`None` for a key the view does not hold); `Err` names the
/// first key that must not cross (a secondary asking for it is refused).
pub fn fetch(
    view: &AppliedState,
    keys: &[String],
    crossing: &Crossing,
) -> Result<FetchedKeys, String> {
    let mut entries = Vec::with_capacity(keys.len());
    let mut bytes = 0;
    for key in keys {
        if !crossing.crosses(key) {
            return Err(key.clone());
        }
        let value = view.get(key).map(|value| value.to_vec());
        let size = key.len() + value.as_ref().map_or(0, Vec::len);
        if bytes + size > ANSWER_BYTES_MAX && !entries.is_empty() {
            break;
        }
        bytes += size;
        entries.push((key.clone(), value));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use openraft::alias::LeaderIdOf;
    use openraft::entry::RaftEntry;
    use openraft::vote::RaftLeaderIdExt;

    use super::*;
    use crate::raft::types::{Command, Entry, LogId, TypeConfig};
    use crate::storage::Op;

    fn log_id(index: u64) -> LogId {
        LogId::new(
            LeaderIdOf::<TypeConfig>::new_committed(1, "n1".to_string()),
            index,
        )
    }

    /// A primary's state (its replication state stored, so its WAL buffer keeps
    /// entries) after `batches`.
    fn state_with(wal_entries: usize, batches: &[&[(&str, Option<&str>)]]) -> AppliedState {
        let (mut state, _) = AppliedState::new(wal_entries).apply(Entry::new_normal(
            log_id(1),
            Command::Apply {
                ops: vec![Op::Put {
                    key: crate::storage::key_space::REPLICATION_STATE_KEY.to_string(),
                    value: b"primary".to_vec().into(),
                }],
            },
        ));
        for (index, batch) in batches.iter().enumerate() {
            let ops = batch
                .iter()
                .map(|(key, value)| match value {
                    Some(value) => Op::Put {
                        key: key.to_string(),
                        value: value.as_bytes().to_vec().into(),
                    },
                    None => Op::Delete {
                        key: key.to_string(),
                    },
                })
                .collect();
            state = state
                .apply(Entry::new_normal(
                    log_id(index as u64 + 2),
                    Command::Apply { ops },
                ))
                .0;
        }
        state
    }

    fn denying(uuid: &str) -> Crossing {
        Crossing {
            denied_mounts: [uuid.to_string()].into(),
            allowed_mounts: None,
        }
    }

    /// A filter judged mounts `keep` (allowed) and `deny` (denied); `later` was created
    /// after it was judged, and `gone` deleted before.
    #[test]
    fn a_mount_the_filter_has_not_judged_sends_deletes_but_no_values() {
        let state = state_with(
            16,
            &[&[
                ("logical/keep/a", Some("1")),
                ("logical/later/b", Some("2")),
                ("logical/gone/c", None),
            ]],
        );
        let crossing = Crossing {
            denied_mounts: ["deny".to_string()].into(),
            allowed_mounts: Some(["keep".to_string()].into()),
        };
        assert!(crossing.crosses("logical/keep/a"));
        assert!(!crossing.crosses("logical/later/b"));
        assert!(crossing.change_crosses("logical/gone/c", true));
        assert!(!crossing.change_crosses("logical/deny/x", true));
        assert!(!crossing.allows_group(&KeyGroup::Mount("later".into())));
        let Pulled::Wals { entries, .. } = pull(&state, 0, 100, &crossing) else {
            panic!("entries are buffered");
        };
        let keys: Vec<&str> = entries.iter().map(|entry| entry.key.as_str()).collect();
        assert_eq!(keys, ["logical/keep/a"]);
    }

    #[test]
    fn local_keys_and_denied_mounts_never_cross_and_the_position_moves_past_them() {
        let state = state_with(
            16,
            &[
                &[
                    ("logical/keep/a", Some("1")),
                    ("sys/token/id/t", Some("tok")),
                ],
                &[("logical/deny/b", Some("2"))],
                &[
                    ("core/mounts/deny", Some("entry")),
                    ("logical/keep/a", None),
                ],
            ],
        );
        let Pulled::Wals { entries, to } = pull(&state, 0, 100, &denying("deny")) else {
            panic!("entries are buffered");
        };
        assert_eq!(to, state.wal().last_wal_index());
        let keys: Vec<(&str, bool)> = entries
            .iter()
            .map(|entry| (entry.key.as_str(), entry.value.is_some()))
            .collect();
        assert_eq!(keys, [("logical/keep/a", true), ("logical/keep/a", false)]);
        assert_eq!(
            pull(&state, to, 100, &Crossing::default()),
            Pulled::UpToDate
        );
        let Pulled::Wals { to: first, .. } = pull(&state, 0, 1, &Crossing::default()) else {
            panic!("one entry at a time");
        };
        assert_eq!(first, 1);
    }

    #[test]
    fn a_position_outside_the_buffer_needs_a_sync() {
        let batches: Vec<Vec<(String, Option<&str>)>> = (0..10)
            .map(|n| vec![(format!("logical/m/{n}"), Some("v"))])
            .collect();
        let borrowed: Vec<Vec<(&str, Option<&str>)>> = batches
            .iter()
            .map(|batch| batch.iter().map(|(k, v)| (k.as_str(), *v)).collect())
            .collect();
        let slices: Vec<&[(&str, Option<&str>)]> = borrowed.iter().map(Vec::as_slice).collect();
        let state = state_with(4, &slices);
        assert_eq!(pull(&state, 2, 100, &Crossing::default()), Pulled::NeedSync);
        assert_eq!(
            pull(&state, 11, 100, &Crossing::default()),
            Pulled::NeedSync
        );
        assert!(matches!(
            pull(&state, 6, 100, &Crossing::default()),
            Pulled::Wals { to: 10, .. }
        ));
    }

    #[test]
    fn a_fetch_answers_crossing_keys_only() {
        let state = state_with(
            16,
            &[&[
                ("logical/keep/a", Some("1")),
                ("logical/deny/c", Some("3")),
                ("sys/token/id/t", Some("4")),
            ]],
        );
        let crossing = denying("deny");
        let answered = fetch(
            &state,
            &["logical/keep/a".into(), "logical/keep/gone".into()],
            &crossing,
        )
        .unwrap();
        assert_eq!(
            answered,
            [
                ("logical/keep/a".to_string(), Some(b"1".to_vec())),
                ("logical/keep/gone".to_string(), None)
            ]
        );
        for refused in ["logical/deny/c", "sys/token/id/t"] {
            assert_eq!(
                fetch(&state, &[refused.to_string()], &crossing),
                Err(refused.to_string())
            );
        }
        assert!(crossing.allows_group(&KeyGroup::Mount("keep".into())));
        assert!(!crossing.allows_group(&KeyGroup::Mount("deny".into())));
    }
}
