//! A secondary walks its Merkle index against whatever the primary's connection sends:
//! honest, altered or invented answers (and invented group roots) must be taken or
//! refused without a panic, every accepted answer must stay within the bound the tree's
//! shape sets, and a walk started from honest group roots must finish with a plan that
//! makes the local index equal the remote one.
#![no_main]
use std::collections::BTreeMap;
use std::sync::Arc;

use arca::replication::merkle::{
    CHILDREN_MAX, Hash, MerkleDiff, MerkleIndex, MerkleRequest, MerkleResponse, replicated_group,
};
use arca::storage::KeyGroup;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Replicated keys of a few groups, so the two indexes overlap and differ in places.
const KEYS: &[&str] = &[
    "core/keyring",
    "core/mounts/m1",
    "logical/m1/a",
    "logical/m1/b",
    "logical/m1/c/d",
    "logical/m2/a",
    "logical/m2/b",
    "auth/m3/user/bob",
    "sys/policy/admin",
    "sys/policy/dev",
    "identity/entity/e1",
];

/// Groups an invented answer may name: real ones and one no index holds.
fn group(data: &mut Unstructured) -> Result<KeyGroup> {
    let key = KEYS[data.choose_index(KEYS.len())?];
    Ok(if data.arbitrary()? {
        KeyGroup::Mount("m9".to_string())
    } else {
        replicated_group(key).expect("the fuzz keys are replicated")
    })
}

/// The model of a key space (its values) and its index.
fn key_space(data: &mut Unstructured) -> Result<(BTreeMap<&'static str, u8>, MerkleIndex)> {
    let mut model = BTreeMap::new();
    let mut index = MerkleIndex::new();
    for _ in 0..data.int_in_range(0..=24)? {
        let key = KEYS[data.choose_index(KEYS.len())?];
        let value: Option<u8> = data.arbitrary()?;
        let group = replicated_group(key).expect("the fuzz keys are replicated");
        match value {
            Some(value) => model.insert(key, value),
            None => model.remove(key),
        };
        index.apply(
            key,
            &group,
            value.map(|value| [value]).as_ref().map(|v| &v[..]),
        );
    }
    Ok((model, index))
}

fn hashes(data: &mut Unstructured) -> Result<Vec<(u8, Hash)>> {
    let length = data.int_in_range(0..=CHILDREN_MAX + 2)?;
    (0..length).map(|_| data.arbitrary()).collect()
}

/// An answer to `request`: the honest one, the honest one altered, or an invention.
fn response(
    data: &mut Unstructured,
    request: &MerkleRequest,
    remote: &MerkleIndex,
) -> Result<MerkleResponse> {
    let mut honest = remote.answer(request);
    Ok(match data.int_in_range(0..=2)? {
        0 => honest,
        1 => {
            let position: usize = data.arbitrary()?;
            let byte: u8 = data.arbitrary()?;
            match &mut honest {
                MerkleResponse::Pages { pages: list, .. }
                | MerkleResponse::Buckets { buckets: list, .. } => {
                    if !list.is_empty() {
                        let position = position % list.len();
                        list[position].1[usize::from(byte) % 32] ^= 1 | byte;
                        if byte % 2 == 0 {
                            list.push(list[position]);
                        }
                    }
                }
                MerkleResponse::Leaves { leaves, .. } => {
                    if !leaves.is_empty() {
                        let position = position % leaves.len();
                        if byte % 2 == 0 {
                            leaves.remove(position);
                        } else {
                            leaves[position].0 = Arc::from(KEYS[usize::from(byte) % KEYS.len()]);
                        }
                    }
                }
            }
            honest
        }
        _ => match data.int_in_range(0..=2)? {
            0 => MerkleResponse::Pages {
                group: group(data)?,
                pages: hashes(data)?,
            },
            1 => MerkleResponse::Buckets {
                group: group(data)?,
                page: data.arbitrary()?,
                buckets: hashes(data)?,
            },
            _ => {
                let length = data.int_in_range(0..=40)?;
                let leaves = (0..length)
                    .map(|_| {
                        let key: Arc<str> = if data.arbitrary()? {
                            Arc::from(KEYS[data.choose_index(KEYS.len())?])
                        } else {
                            Arc::from(data.arbitrary::<&str>()?)
                        };
                        Ok((key, data.arbitrary()?))
                    })
                    .collect::<Result<_>>()?;
                MerkleResponse::Leaves {
                    group: group(data)?,
                    bucket: data.arbitrary()?,
                    leaves,
                }
            }
        },
    })
}

/// The most loop turns one input may take: far above what an honest walk over these
/// keys needs, so reaching it means the walk does not end.
const STEPS_MAX: usize = 1 << 16;

fn run(data: &mut Unstructured) -> Result<()> {
    let (remote_model, remote) = key_space(data)?;
    let (_, mut local) = key_space(data)?;
    let honest_roots: bool = data.arbitrary()?;
    let roots = if honest_roots {
        remote.group_roots(|_| true)
    } else {
        let length = data.int_in_range(0..=8)?;
        (0..length)
            .map(|_| Ok((group(data)?, data.arbitrary()?)))
            .collect::<Result<_>>()?
    };
    // Each accepted answer resolves one node of a group's tree, and a group's tree has
    // one page level, 256 pages and 65536 buckets.
    let accepted_max = roots.len() * (1 + CHILDREN_MAX + CHILDREN_MAX * CHILDREN_MAX);
    let Ok(mut walk) = MerkleDiff::new(&local, roots) else {
        assert!(!honest_roots, "honest group roots are accepted");
        return Ok(());
    };
    let mut in_flight: Vec<MerkleRequest> = Vec::new();
    let mut accepted = 0;
    for _ in 0..STEPS_MAX {
        in_flight.extend(std::iter::from_fn(|| walk.next_request()));
        if walk.is_done() {
            break;
        }
        assert!(
            !in_flight.is_empty(),
            "a walk that is not done awaits an answer"
        );
        // Once the input is used up, every answer is the honest one.
        let request = in_flight[data.choose_index(in_flight.len())?].clone();
        let response = response(data, &request, &remote)?;
        let answered = response.request();
        if walk.on_response(response).is_ok() {
            accepted += 1;
            assert!(accepted <= accepted_max);
            in_flight.retain(|request| *request != answered);
        } else if data.is_empty() && !honest_roots {
            // Invented roots: no honest answer matches them, so the walk cannot end.
            return Ok(());
        }
    }
    if !honest_roots {
        return Ok(());
    }
    assert!(walk.is_done(), "a walk from honest roots ends");
    let plan = walk.into_plan().expect("a finished walk has a plan");
    for key in &plan.fetch {
        let group = replicated_group(key).expect("fetched keys are replicated");
        let value = remote_model[&**key];
        local.apply(key.clone(), &group, Some(&[value]));
    }
    for key in &plan.delete {
        let group = replicated_group(key).expect("local keys are replicated");
        local.apply(key.clone(), &group, None);
    }
    assert_eq!(local.root(), remote.root());
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
