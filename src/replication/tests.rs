//! The replication cores against the model in `model.rs`, under any interleaving.

use proptest::prelude::*;

use super::model::{PRIMARY_KEYS, Step, run};

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => proptest::collection::vec((0..PRIMARY_KEYS.len(), proptest::option::of(0u8..3)), 1..4)
            .prop_map(Step::Primary),
        4 => (1u32..6).prop_map(|max| Step::Pull { max }),
        1 => (0u64..4).prop_map(|back| Step::StalePull { back }),
        1 => (1u32..4).prop_map(|page| Step::Sync { page }),
        1 => Just(Step::ToggleFilter),
        1 => (0u8..3).prop_map(Step::SecondaryLocal),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_secondary_converges_to_its_filtered_view_and_never_holds_what_must_stay(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        if let Err(violation) = run(&steps) {
            prop_assert!(false, "{}", violation);
        }
    }
}

#[test]
fn arbitrary_bytes_decode_to_bounded_runs() {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let steps = Step::decode(&bytes);
    assert_eq!(steps.len(), super::model::STEPS_MAX);
    run(&steps).unwrap();
}

#[test]
fn the_models_keys_are_built_byte_for_byte_as_before() {
    // Built through the key space's constructors; pinned here so a change to a
    // constructor that moved a key would show.
    assert_eq!(
        *PRIMARY_KEYS,
        [
            "logical/keep/a",
            "logical/keep/b",
            "logical/deny/c",
            "core/mounts/keep",
            "core/mounts/deny",
            "core/auth/users",
            "auth/users/user/bob",
            "sys/policy/p",
            "core/keyring",
            "sys/token/id/t",
            "sys/expire/l",
            "local-logical/l/x",
            "core/local-mounts/l",
        ]
    );
}
