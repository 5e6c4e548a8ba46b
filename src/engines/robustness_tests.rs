//! Property: no sequence of requests, however malformed, makes an engine panic or fail
//! with an internal error. Every refusal must be one a client caused (400, 403, 404,
//! 405), and reads after the sequence still work.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::engines::test_support::{fixture, request};
use crate::engines::{cubbyhole, kv_v1, kv_v2};
use crate::logical::{LogicalError, Operation, Request, Response};

const FIELD_NAMES: &[&str] = &[
    "data",
    "options",
    "cas",
    "versions",
    "version",
    "depth",
    "max_versions",
    "cas_required",
    "delete_version_after",
    "custom_metadata",
    "ttl",
    "lease",
];

const PATH_PARTS: &[&str] = &[
    "data", "metadata", "delete", "undelete", "destroy", "subkeys", "config", "a", "b", "..", ".",
    "", "x y",
];

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        Just(Operation::Read),
        Just(Operation::List),
        Just(Operation::Create),
        Just(Operation::Update),
        Just(Operation::Patch),
        Just(Operation::Delete),
    ]
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(PATH_PARTS), 0..4),
        any::<bool>(),
    )
        .prop_map(|(parts, trailing_slash)| {
            let mut path = parts.join("/");
            if trailing_slash {
                path.push('/');
            }
            path
        })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..12).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1.0e20f64..1.0e20).prop_map(|float| json!(float)),
        prop::sample::select(vec!["", "1", "2,3", "-1s", "10s", "true", "x", "1h"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(prop::sample::select(FIELD_NAMES), inner, 0..4).prop_map(
                |members| {
                    Value::Object(
                        members
                            .into_iter()
                            .map(|(name, value)| (name.to_string(), value))
                            .collect(),
                    )
                }
            ),
        ]
    })
}

fn body() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(prop::sample::select(FIELD_NAMES), json_value(), 0..5).prop_map(
        |members| {
            members
                .into_iter()
                .map(|(name, value)| (name.to_string(), value))
                .collect()
        },
    )
}

/// One request: operation, path, body, seconds to advance (or the time), with a token.
type Step = (Operation, String, Map<String, Value>, i64, bool);

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (operation(), path(), body(), 0i64..50, any::<bool>()),
        1..30,
    )
}

fn check(outcome: Result<Option<Response>, LogicalError>, request: &Request) {
    if let Err(error) = outcome {
        assert!(
            matches!(
                error,
                LogicalError::BadRequest(_)
                    | LogicalError::PermissionDenied
                    | LogicalError::NotFound
                    | LogicalError::UnsupportedOperation
            ),
            "{request:?} failed with {error:?}"
        );
    }
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(future)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn kv_v2_survives_any_request_sequence(steps in steps()) {
        let fixture = fixture();
        let mut now = 1_000;
        for (operation, path, data, advance, _) in steps {
            now += advance;
            let request = Request::new(operation, path, data, now);
            check(kv_v2::exists(&fixture.view, &request).map(|_| None), &request);
            check(block_on(kv_v2::handle(&fixture.view, &request)), &request);
        }
        let listing = block_on(kv_v2::handle(&fixture.view, &request(Operation::List, "metadata/", json!({}), now)));
        check(listing, &request(Operation::List, "metadata/", json!({}), now));
    }

    #[test]
    fn kv_v1_and_cubbyhole_survive_any_request_sequence(steps in steps()) {
        let fixture = fixture();
        for (operation, path, data, now, with_token) in steps {
            let mut request = Request::new(operation, path, data, now);
            check(kv_v1::exists(&fixture.view, &request).map(|_| None), &request);
            check(block_on(kv_v1::handle(&fixture.view, &request)), &request);
            if with_token {
                request.client_token = Some("token".to_string());
            }
            check(cubbyhole::exists(&fixture.view, &request).map(|_| None), &request);
            check(block_on(cubbyhole::handle(&fixture.view, &request)), &request);
        }
        block_on(cubbyhole::destroy_for_token(&fixture.view, "token")).unwrap();
    }
}
