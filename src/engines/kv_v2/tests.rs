//! KV v2 stories, all through [`handle`] over an encrypted memory barrier.

use serde_json::{Value, json};

use super::{exists, handle};
use crate::barrier::View;
use crate::engines::test_support::{Fixture, fixture, request};
use crate::logical::{LogicalError, Operation, Response};

const T0: i64 = 1_764_306_000; // 2025-11-28T05:00:00Z

async fn call(
    view: &View,
    operation: Operation,
    path: &str,
    body: Value,
    now: i64,
) -> Result<Option<Response>, LogicalError> {
    handle(view, &request(operation, path, body, now)).await
}

/// The body of a successful (or 404-with-body) response.
async fn body(view: &View, operation: Operation, path: &str, body: Value, now: i64) -> Value {
    let response = call(view, operation, path, body, now)
        .await
        .unwrap()
        .unwrap();
    Value::Object(response.data.unwrap_or_default())
}

async fn put(
    view: &View,
    path: &str,
    body: Value,
    now: i64,
) -> Result<Option<Response>, LogicalError> {
    call(view, Operation::Update, path, body, now).await
}

fn bad_request(message: &str) -> Result<Option<Response>, LogicalError> {
    Err(LogicalError::BadRequest(message.to_string()))
}

fn version_key_count(fixture: &Fixture) -> usize {
    fixture
        .backend
        .dump()
        .iter()
        .filter(|(key, _)| key.starts_with("logical/uuid/versions/"))
        .count()
}

#[tokio::test]
async fn versions_and_check_and_set() {
    let fixture = fixture();
    let view = &fixture.view;

    // Phase 1: the first write creates version 1; the router would have asked `create`.
    let first = request(
        Operation::Create,
        "data/app/db",
        json!({"data": {"password": "hunter2"}}),
        T0,
    );
    assert!(!exists(view, &first).unwrap());
    let written = handle(view, &first).await.unwrap().unwrap();
    assert_eq!(
        Value::Object(written.data.unwrap()),
        json!({"created_time": "2025-11-28T05:00:00Z", "custom_metadata": null,
               "deletion_time": "", "destroyed": false, "version": 1})
    );
    assert!(exists(view, &first).unwrap());

    // Phase 2: a second write is version 2; reads default to the latest, `?version=`
    // (a query string) picks an older one.
    put(
        view,
        "data/app/db",
        json!({"data": {"password": "correct-horse"}}),
        T0 + 1,
    )
    .await
    .unwrap();
    let latest = body(view, Operation::Read, "data/app/db", json!({}), T0 + 2).await;
    assert_eq!(
        latest,
        json!({"data": {"password": "correct-horse"},
               "metadata": {"created_time": "2025-11-28T05:00:01Z", "custom_metadata": null,
                            "deletion_time": "", "destroyed": false, "version": 2}})
    );
    let older = body(
        view,
        Operation::Read,
        "data/app/db",
        json!({"version": "1"}),
        T0 + 2,
    )
    .await;
    assert_eq!(older["data"], json!({"password": "hunter2"}));
    assert_eq!(older["metadata"]["version"], 1);
    let missing = call(
        view,
        Operation::Read,
        "data/app/db",
        json!({"version": "9"}),
        T0 + 2,
    )
    .await;
    assert_eq!(missing, Err(LogicalError::NotFound));
    assert_eq!(
        call(view, Operation::Read, "data/nope", json!({}), T0).await,
        Err(LogicalError::NotFound)
    );

    // Phase 3: check-and-set. cas=0 means "only if absent"; a stale cas is refused; the
    // current version's number is accepted.
    let create_only = put(
        view,
        "data/app/db",
        json!({"options": {"cas": 0}, "data": {"x": 1}}),
        T0 + 3,
    )
    .await;
    assert_eq!(
        create_only,
        bad_request("check-and-set parameter did not match the current version")
    );
    let stale = put(
        view,
        "data/app/db",
        json!({"options": {"cas": 1}, "data": {"x": 1}}),
        T0 + 3,
    )
    .await;
    assert_eq!(
        stale,
        bad_request("check-and-set parameter did not match the current version")
    );
    let fresh = put(
        view,
        "data/app/db",
        json!({"options": {"cas": "2"}, "data": {"x": 1}}),
        T0 + 3,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(fresh.data.unwrap()["version"], 3);
    let new_key = put(
        view,
        "data/app/new",
        json!({"options": {"cas": 0}, "data": {"x": 1}}),
        T0 + 3,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(new_key.data.unwrap()["version"], 1);
    let garbled = put(
        view,
        "data/app/db",
        json!({"options": {"cas": "three"}, "data": {"x": 1}}),
        T0 + 3,
    )
    .await;
    assert_eq!(
        garbled,
        bad_request("error parsing check-and-set parameter")
    );

    // Phase 4: when the engine requires CAS, a write without it is refused.
    put(view, "config", json!({"cas_required": true}), T0 + 4)
        .await
        .unwrap();
    let unguarded = put(view, "data/app/db", json!({"data": {"x": 2}}), T0 + 4).await;
    assert_eq!(
        unguarded,
        bad_request("check-and-set parameter required for this call")
    );
    put(view, "config", json!({"cas_required": false}), T0 + 4)
        .await
        .unwrap();

    // ... and likewise when only the key requires it.
    put(
        view,
        "metadata/app/db",
        json!({"cas_required": true}),
        T0 + 5,
    )
    .await
    .unwrap();
    let unguarded = put(view, "data/app/db", json!({"data": {"x": 2}}), T0 + 5).await;
    assert_eq!(
        unguarded,
        bad_request("check-and-set parameter required for this call")
    );
    put(
        view,
        "data/app/db",
        json!({"options": {"cas": 3}, "data": {"x": 2}}),
        T0 + 5,
    )
    .await
    .unwrap();

    // Phase 5: nothing readable reached storage: not values, not data keys' contents.
    for plaintext in ["hunter2", "correct-horse", "password"] {
        assert!(
            !fixture.storage_contains(plaintext),
            "{plaintext} found in storage"
        );
    }
}

/// On a performance secondary (or a demoted primary) a delete is the primary's to judge
/// even when this copy holds nothing to delete: the primary's copy may hold a version
/// this one has not received yet, and a 204 from here would lose the delete.
#[tokio::test]
async fn a_delete_with_nothing_to_delete_on_a_read_only_copy_is_left_to_the_primary() {
    let fixture = fixture();
    let view = &fixture.view;
    fixture.barrier.set_replicated_read_only(true);
    for path in ["data/never-written", "data/k"] {
        assert!(
            matches!(
                call(view, Operation::Delete, path, json!({}), T0).await,
                Err(LogicalError::ReadOnly)
            ),
            "{path}"
        );
    }
    fixture.barrier.set_replicated_read_only(false);
    assert!(
        call(view, Operation::Delete, "data/never-written", json!({}), T0)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn delete_undelete_and_destroy() {
    let fixture = fixture();
    let view = &fixture.view;
    for (index, value) in ["one", "two", "three"].iter().enumerate() {
        put(
            view,
            "data/k",
            json!({"data": {"v": value}}),
            T0 + index as i64,
        )
        .await
        .unwrap();
    }

    // Phase 1: DELETE data/k soft-deletes the latest: a read is a 404 that still
    // carries the metadata, with `data: null` and the deletion time.
    assert_eq!(
        call(view, Operation::Delete, "data/k", json!({}), T0 + 10).await,
        Ok(None)
    );
    let deleted = call(view, Operation::Read, "data/k", json!({}), T0 + 11)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.status, Some(404));
    assert_eq!(
        Value::Object(deleted.data.unwrap()),
        json!({"data": null,
               "metadata": {"created_time": "2025-11-28T05:00:02Z", "custom_metadata": null,
                            "deletion_time": "2025-11-28T05:00:10Z", "destroyed": false, "version": 3}})
    );
    // Deleting again keeps the original deletion time.
    call(view, Operation::Delete, "data/k", json!({}), T0 + 12)
        .await
        .unwrap();
    let again = body(view, Operation::Read, "data/k", json!({}), T0 + 13).await;
    assert_eq!(again["metadata"]["deletion_time"], "2025-11-28T05:00:10Z");

    // Phase 2: delete/ takes version lists in any of Vault's forms.
    call(
        view,
        Operation::Update,
        "delete/k",
        json!({"versions": "1"}),
        T0 + 14,
    )
    .await
    .unwrap();
    let one = call(
        view,
        Operation::Read,
        "data/k",
        json!({"version": 1}),
        T0 + 15,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(one.status, Some(404));

    // Phase 3: undelete/ restores both; the data comes back.
    call(
        view,
        Operation::Update,
        "undelete/k",
        json!({"versions": [1, "3", 42]}),
        T0 + 16,
    )
    .await
    .unwrap();
    for version in [1, 3] {
        let restored = call(
            view,
            Operation::Read,
            "data/k",
            json!({"version": version}),
            T0 + 17,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(restored.status, None);
        assert_eq!(restored.data.unwrap()["metadata"]["deletion_time"], "");
    }

    // Phase 4: destroy/ removes version 2's data for good: 404 with destroyed=true, the
    // ciphertext is gone from storage, and undelete cannot bring it back.
    assert_eq!(version_key_count(&fixture), 3);
    call(
        view,
        Operation::Update,
        "destroy/k",
        json!({"versions": [2]}),
        T0 + 18,
    )
    .await
    .unwrap();
    assert_eq!(version_key_count(&fixture), 2);
    call(
        view,
        Operation::Update,
        "undelete/k",
        json!({"versions": [2]}),
        T0 + 19,
    )
    .await
    .unwrap();
    let destroyed = call(
        view,
        Operation::Read,
        "data/k",
        json!({"version": 2}),
        T0 + 20,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(destroyed.status, Some(404));
    let destroyed = Value::Object(destroyed.data.unwrap());
    assert_eq!(destroyed["data"], Value::Null);
    assert_eq!(destroyed["metadata"]["destroyed"], true);

    // Phase 5: an empty version list is refused with Vault's (inconsistent) messages;
    // unknown keys are a silent no-op.
    for (path, message) in [
        ("delete/k", "No version number provided"),
        ("undelete/k", "No version number provided"),
        ("destroy/k", "no version number provided"),
    ] {
        assert_eq!(
            put(view, path, json!({}), T0 + 21).await,
            bad_request(message)
        );
    }
    assert_eq!(
        put(view, "destroy/unknown", json!({"versions": [1]}), T0 + 21).await,
        Ok(None)
    );
    let wrong_type = put(view, "delete/k", json!({"versions": {"1": true}}), T0 + 21).await;
    assert!(matches!(wrong_type, Err(LogicalError::BadRequest(_))));
}

#[tokio::test]
async fn metadata_read_write_patch_list_and_delete() {
    let fixture = fixture();
    let view = &fixture.view;
    put(view, "data/team/a", json!({"data": {"v": 1}}), T0)
        .await
        .unwrap();
    put(view, "data/team/a", json!({"data": {"v": 2}}), T0 + 5)
        .await
        .unwrap();
    put(view, "data/team/sub/b", json!({"data": {"v": 1}}), T0)
        .await
        .unwrap();
    put(view, "data/top", json!({"data": {"v": 1}}), T0)
        .await
        .unwrap();

    // Phase 1: settings and custom metadata are stored per key.
    let written = put(
        view,
        "metadata/team/a",
        json!({"max_versions": 5, "delete_version_after": "1h", "custom_metadata": {"owner": "ops", "tier": 1}}),
        T0 + 6,
    )
    .await;
    assert_eq!(written, Ok(None));
    let metadata = body(view, Operation::Read, "metadata/team/a", json!({}), T0 + 7).await;
    assert_eq!(
        metadata,
        json!({
            "cas_required": false,
            "created_time": "2025-11-28T05:00:00Z",
            "current_version": 2,
            "custom_metadata": {"owner": "ops", "tier": "1"},
            "delete_version_after": "1h0m0s",
            "max_versions": 5,
            "oldest_version": 0,
            "updated_time": "2025-11-28T05:00:05Z",
            "versions": {
                "1": {"created_time": "2025-11-28T05:00:00Z", "deletion_time": "", "destroyed": false},
                "2": {"created_time": "2025-11-28T05:00:05Z", "deletion_time": "", "destroyed": false}
            }
        })
    );
    // Data reads now carry the custom metadata.
    let read = body(view, Operation::Read, "data/team/a", json!({}), T0 + 7).await;
    assert_eq!(
        read["metadata"]["custom_metadata"],
        json!({"owner": "ops", "tier": "1"})
    );

    // Phase 2: PATCH merges; a null removes one pair; other settings stay.
    let patched = call(
        view,
        Operation::Patch,
        "metadata/team/a",
        json!({"custom_metadata": {"tier": null, "team": "blue"}}),
        T0 + 8,
    )
    .await;
    assert_eq!(patched, Ok(None));
    let metadata = body(view, Operation::Read, "metadata/team/a", json!({}), T0 + 9).await;
    assert_eq!(
        metadata["custom_metadata"],
        json!({"owner": "ops", "team": "blue"})
    );
    assert_eq!(metadata["max_versions"], 5);
    let absent = call(
        view,
        Operation::Patch,
        "metadata/nope",
        json!({"max_versions": 1}),
        T0 + 9,
    )
    .await;
    assert_eq!(absent, Err(LogicalError::NotFound));

    // Phase 3: LIST shows folders with a trailing slash, at any depth.
    let root = body(view, Operation::List, "metadata/", json!({}), T0 + 10).await;
    assert_eq!(root["keys"], json!(["team/", "top"]));
    let team = body(view, Operation::List, "metadata/team/", json!({}), T0 + 10).await;
    assert_eq!(team["keys"], json!(["a", "sub/"]));
    let empty = call(
        view,
        Operation::List,
        "metadata/nothing/",
        json!({}),
        T0 + 10,
    )
    .await;
    assert_eq!(empty, Err(LogicalError::NotFound));

    // Phase 4: metadata for a key with no versions is allowed; its data reads 404.
    put(
        view,
        "metadata/planned",
        json!({"max_versions": 2}),
        T0 + 11,
    )
    .await
    .unwrap();
    let planned = request(Operation::Update, "data/planned", json!({}), T0 + 11);
    assert!(exists(view, &planned).unwrap());
    assert_eq!(
        call(view, Operation::Read, "data/planned", json!({}), T0 + 11).await,
        Err(LogicalError::NotFound)
    );
    // Its first version keeps the metadata's creation time; emptying the custom
    // metadata reads back as null, as in Vault.
    put(view, "data/planned", json!({"data": {"v": 1}}), T0 + 20)
        .await
        .unwrap();
    put(
        view,
        "metadata/planned",
        json!({"custom_metadata": {}}),
        T0 + 21,
    )
    .await
    .unwrap();
    let planned = body(
        view,
        Operation::Read,
        "metadata/planned",
        json!({}),
        T0 + 22,
    )
    .await;
    assert_eq!(planned["created_time"], "2025-11-28T05:00:11Z");
    assert_eq!(planned["updated_time"], "2025-11-28T05:00:20Z");
    assert_eq!(planned["custom_metadata"], Value::Null);
    // A body with no settings changes (and creates) nothing.
    assert_eq!(
        put(view, "metadata/ghost", json!({"unrelated": 1}), T0 + 11).await,
        Ok(None)
    );
    assert_eq!(
        call(view, Operation::Read, "metadata/ghost", json!({}), T0 + 11).await,
        Err(LogicalError::NotFound)
    );

    // Phase 5: when the engine mandates CAS, turning it off per key warns.
    put(view, "config", json!({"cas_required": true}), T0 + 12)
        .await
        .unwrap();
    let warned = put(
        view,
        "metadata/top",
        json!({"cas_required": false}),
        T0 + 12,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        warned.warnings,
        vec![
            "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored."
        ]
    );

    // Phase 6: invalid custom metadata is refused with every problem listed.
    let long_value = "x".repeat(513);
    let refused = put(
        view,
        "metadata/top",
        json!({"custom_metadata": {"a": long_value, "b": ""}}),
        T0 + 13,
    )
    .await;
    assert_eq!(
        refused,
        bad_request(
            "2 errors occurred:\n\
             \t* custom_metadata validation failed: length of value for key \"a\" is 513 but must be 0 < len(value) <= 512\n\
             \t* custom_metadata validation failed: length of value for key \"b\" is 0 but must be 0 < len(value) <= 512\n\n"
        )
    );

    // Phase 7: DELETE metadata removes the key and every version's data.
    assert_eq!(version_key_count(&fixture), 5);
    assert_eq!(
        call(
            view,
            Operation::Delete,
            "metadata/team/a",
            json!({}),
            T0 + 14
        )
        .await,
        Ok(None)
    );
    assert_eq!(version_key_count(&fixture), 3);
    assert_eq!(
        call(view, Operation::Read, "data/team/a", json!({}), T0 + 14).await,
        Err(LogicalError::NotFound)
    );
    assert_eq!(
        call(view, Operation::Read, "metadata/team/a", json!({}), T0 + 14).await,
        Err(LogicalError::NotFound)
    );
    let team = body(view, Operation::List, "metadata/team", json!({}), T0 + 14).await;
    assert_eq!(team["keys"], json!(["sub/"]));
}

#[tokio::test]
async fn max_versions_trims_the_oldest() {
    let fixture = fixture();
    let view = &fixture.view;

    // Phase 1: with the engine keeping 3 versions, the fourth write drops version 1.
    put(view, "config", json!({"max_versions": 3}), T0)
        .await
        .unwrap();
    let config = body(view, Operation::Read, "config", json!({}), T0).await;
    assert_eq!(
        config,
        json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 3})
    );
    for version in 1..=5 {
        put(
            view,
            "data/k",
            json!({"data": {"n": version}}),
            T0 + version,
        )
        .await
        .unwrap();
    }
    let metadata = body(view, Operation::Read, "metadata/k", json!({}), T0 + 10).await;
    assert_eq!(metadata["current_version"], 5);
    assert_eq!(metadata["oldest_version"], 3);
    let kept: Vec<&String> = metadata["versions"].as_object().unwrap().keys().collect();
    assert_eq!(kept, ["3", "4", "5"]);
    assert_eq!(version_key_count(&fixture), 3);
    let trimmed = call(
        view,
        Operation::Read,
        "data/k",
        json!({"version": 1}),
        T0 + 10,
    )
    .await;
    assert_eq!(trimmed, Err(LogicalError::NotFound));

    // Phase 2: the larger of the key's and the engine's limits wins (Vault's rule): a key
    // asking for 1 still keeps 3 while the engine says 3 ...
    put(view, "metadata/k", json!({"max_versions": 1}), T0 + 11)
        .await
        .unwrap();
    put(view, "data/k", json!({"data": {"n": 6}}), T0 + 12)
        .await
        .unwrap();
    assert_eq!(version_key_count(&fixture), 3);

    // ... and lowering the engine to 2 (the key unset) trims several versions in one
    // write.
    put(view, "metadata/k", json!({"max_versions": 0}), T0 + 13)
        .await
        .unwrap();
    put(view, "config", json!({"max_versions": 2}), T0 + 13)
        .await
        .unwrap();
    put(view, "data/k", json!({"data": {"n": 7}}), T0 + 14)
        .await
        .unwrap();
    let metadata = body(view, Operation::Read, "metadata/k", json!({}), T0 + 15).await;
    let kept: Vec<&String> = metadata["versions"].as_object().unwrap().keys().collect();
    assert_eq!(kept, ["6", "7"]);
    assert_eq!(metadata["oldest_version"], 6);
    assert_eq!(version_key_count(&fixture), 2);

    // Phase 3: the limit is bounded and must be a non-negative integer.
    assert!(matches!(
        put(view, "config", json!({"max_versions": -1}), T0).await,
        Err(LogicalError::BadRequest(_))
    ));
    assert!(matches!(
        put(view, "config", json!({"max_versions": 1_000_000}), T0).await,
        Err(LogicalError::BadRequest(_))
    ));
    assert!(matches!(
        put(view, "metadata/k", json!({"max_versions": "many"}), T0).await,
        Err(LogicalError::BadRequest(_))
    ));
}

#[tokio::test]
async fn delete_version_after_expires_versions_as_time_advances() {
    let fixture = fixture();
    let view = &fixture.view;

    // Phase 1: the engine deletes versions 10s after they are written.
    put(view, "config", json!({"delete_version_after": "10s"}), T0)
        .await
        .unwrap();
    let written = put(view, "data/k", json!({"data": {"v": 1}}), T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        written.data.unwrap()["deletion_time"],
        "2025-11-28T05:00:10Z"
    );
    let before = call(view, Operation::Read, "data/k", json!({}), T0 + 9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.status, None);
    let after = call(view, Operation::Read, "data/k", json!({}), T0 + 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.status, Some(404));

    // Phase 2: a shorter per-key setting wins (the smaller non-zero of the two).
    put(
        view,
        "metadata/k",
        json!({"delete_version_after": 3}),
        T0 + 20,
    )
    .await
    .unwrap();
    put(view, "data/k", json!({"data": {"v": 2}}), T0 + 20)
        .await
        .unwrap();
    let live = call(view, Operation::Read, "data/k", json!({}), T0 + 22)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.status, None);
    let expired = call(view, Operation::Read, "data/k", json!({}), T0 + 23)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(expired.status, Some(404));

    // Phase 3: undelete gives an expired version a fresh deadline from now.
    put(view, "undelete/k", json!({"versions": [2]}), T0 + 30)
        .await
        .unwrap();
    let restored = body(view, Operation::Read, "data/k", json!({}), T0 + 31).await;
    assert_eq!(
        restored["metadata"]["deletion_time"],
        "2025-11-28T05:00:33Z"
    );

    // Phase 4: a negative engine setting disables expiry for every key.
    put(
        view,
        "config",
        json!({"delete_version_after": "-1s"}),
        T0 + 40,
    )
    .await
    .unwrap();
    assert_eq!(
        body(view, Operation::Read, "config", json!({}), T0 + 40).await["delete_version_after"],
        "-1s"
    );
    put(view, "data/k", json!({"data": {"v": 3}}), T0 + 40)
        .await
        .unwrap();
    let forever = call(view, Operation::Read, "data/k", json!({}), T0 + 1_000_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(forever.status, None);
    assert_eq!(forever.data.unwrap()["metadata"]["deletion_time"], "");
}

#[tokio::test]
async fn patch_merges_into_the_latest_live_version() {
    let fixture = fixture();
    let view = &fixture.view;

    // Phase 1: nothing to patch yet.
    let absent = call(
        view,
        Operation::Patch,
        "data/k",
        json!({"data": {"a": 1}}),
        T0,
    )
    .await;
    assert_eq!(absent, Err(LogicalError::NotFound));

    // Phase 2: a merge patch adds, replaces and (with null) removes members, creating
    // a new version.
    put(
        view,
        "data/k",
        json!({"data": {"a": 1, "b": {"c": 2, "keep": true}, "gone": "x"}}),
        T0,
    )
    .await
    .unwrap();
    let patched = call(
        view,
        Operation::Patch,
        "data/k",
        json!({"data": {"b": {"c": null, "d": 3}, "gone": null, "e": 4}}),
        T0 + 1,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(patched.data.unwrap()["version"], 2);
    let read = body(view, Operation::Read, "data/k", json!({}), T0 + 2).await;
    assert_eq!(
        read["data"],
        json!({"a": 1, "b": {"d": 3, "keep": true}, "e": 4})
    );

    // Phase 3: patches honour check-and-set and need `data`.
    let stale = call(
        view,
        Operation::Patch,
        "data/k",
        json!({"options": {"cas": 1}, "data": {"a": 2}}),
        T0 + 3,
    )
    .await;
    assert_eq!(
        stale,
        bad_request("check-and-set parameter did not match the current version")
    );
    let no_data = call(
        view,
        Operation::Patch,
        "data/k",
        json!({"options": {"cas": 2}}),
        T0 + 3,
    )
    .await;
    assert_eq!(no_data, bad_request("no data provided"));
    let not_object = call(
        view,
        Operation::Patch,
        "data/k",
        json!({"data": [1, 2]}),
        T0 + 3,
    )
    .await;
    assert!(matches!(not_object, Err(LogicalError::BadRequest(_))));

    // Phase 4: a soft-deleted latest version cannot be patched: 404 with its metadata.
    call(view, Operation::Delete, "data/k", json!({}), T0 + 4)
        .await
        .unwrap();
    let refused = call(
        view,
        Operation::Patch,
        "data/k",
        json!({"data": {"a": 2}}),
        T0 + 5,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(refused.status, Some(404));
    assert_eq!(
        Value::Object(refused.data.unwrap()),
        json!({"created_time": "2025-11-28T05:00:01Z", "custom_metadata": null,
               "deletion_time": "2025-11-28T05:00:04Z", "destroyed": false, "version": 2})
    );
}

#[tokio::test]
async fn subkeys_show_structure_without_values() {
    let fixture = fixture();
    let view = &fixture.view;
    put(
        view,
        "data/k",
        json!({"data": {"foo": "abc", "bar": {"baz": {"deep": 1}, "empty": {}}, "list": [1, 2]}}),
        T0,
    )
    .await
    .unwrap();
    put(view, "data/k", json!({"data": {"only": "v2"}}), T0 + 1)
        .await
        .unwrap();

    // Phase 1: every leaf becomes null; empty objects count as leaves.
    let full = body(
        view,
        Operation::Read,
        "subkeys/k",
        json!({"version": "1"}),
        T0 + 2,
    )
    .await;
    assert_eq!(
        full["subkeys"],
        json!({"foo": null, "bar": {"baz": {"deep": null}, "empty": null}, "list": null})
    );
    assert_eq!(full["metadata"]["version"], 1);

    // Phase 2: `depth` cuts the walk; the default is the latest version.
    let shallow = body(
        view,
        Operation::Read,
        "subkeys/k",
        json!({"version": 1, "depth": "2"}),
        T0 + 2,
    )
    .await;
    assert_eq!(
        shallow["subkeys"],
        json!({"foo": null, "bar": {"baz": null, "empty": null}, "list": null})
    );
    let latest = body(view, Operation::Read, "subkeys/k", json!({}), T0 + 2).await;
    assert_eq!(latest["subkeys"], json!({"only": null}));

    // Phase 3: a deleted version answers 404 with `subkeys: null` and its metadata.
    put(view, "delete/k", json!({"versions": [2]}), T0 + 3)
        .await
        .unwrap();
    let deleted = call(view, Operation::Read, "subkeys/k", json!({}), T0 + 4)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.status, Some(404));
    assert_eq!(deleted.data.unwrap()["subkeys"], Value::Null);
    assert_eq!(
        call(view, Operation::Read, "subkeys/none", json!({}), T0).await,
        Err(LogicalError::NotFound)
    );
}

#[tokio::test]
async fn unknown_paths_and_bad_input_get_vaults_answers() {
    let fixture = fixture();
    let view = &fixture.view;

    // Phase 1: a path without a known prefix is a 404 carrying a hint to `vault kv`.
    for (operation, sub_command) in [
        (Operation::Update, "put"),
        (Operation::Create, "put"),
        (Operation::Read, "get"),
        (Operation::List, "list"),
        (Operation::Delete, "delete"),
        (Operation::Patch, "patch"),
    ] {
        let response = call(view, operation, "foo", json!({"data": {"a": 1}}), T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status, Some(404));
        assert_eq!(response.data, None);
        assert_eq!(
            response.warnings,
            vec![format!(
                "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API \
                 endpoints to use. If using the Vault CLI, use 'vault kv {sub_command}' for this operation."
            )]
        );
    }

    // Phase 2: the bare route names answer with their own warning, except listing the
    // metadata root; `data/` and a data path ending in '/' miss the data route entirely,
    // and an empty key elsewhere is a missing path.
    for root in ["data", "metadata", "destroy"] {
        let response = call(view, Operation::Read, root, json!({}), T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status, Some(404), "{root}");
        assert_eq!(
            response.warnings,
            vec!["Non-listing operations on the root of a K/V v2 mount are not supported."]
        );
    }
    assert_eq!(
        call(view, Operation::List, "metadata", json!({}), T0).await,
        Err(LogicalError::NotFound)
    );
    for not_data in ["data/", "data/a/"] {
        let response = call(view, Operation::Read, not_data, json!({}), T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status, Some(404));
        assert!(
            response.warnings[0].contains("'vault kv get'"),
            "{not_data}"
        );
    }
    assert_eq!(
        put(view, "metadata/", json!({"max_versions": 1}), T0).await,
        bad_request("missing path")
    );

    // Phase 3: wrong JSON types and missing fields are 400s, not panics.
    assert_eq!(
        put(view, "data/k", json!({}), T0).await,
        bad_request("no data provided")
    );
    assert_eq!(
        put(view, "data/k", json!({"data": null}), T0).await,
        bad_request("no data provided")
    );
    for wrong in [
        json!({"data": "text"}),
        json!({"data": [1]}),
        json!({"data": {}, "options": 5}),
    ] {
        assert!(
            matches!(
                put(view, "data/k", wrong.clone(), T0).await,
                Err(LogicalError::BadRequest(_))
            ),
            "{wrong}"
        );
    }
    let bad_version = call(
        view,
        Operation::Read,
        "data/k",
        json!({"version": "latest"}),
        T0,
    )
    .await;
    assert!(matches!(bad_version, Err(LogicalError::BadRequest(_))));
    for wrong in [
        json!({"cas_required": "maybe"}),
        json!({"delete_version_after": "soon"}),
        json!({"delete_version_after": -5}),
    ] {
        assert!(
            matches!(
                put(view, "metadata/k", wrong.clone(), T0).await,
                Err(LogicalError::BadRequest(_))
            ),
            "{wrong}"
        );
    }
    assert!(matches!(
        put(view, "metadata/k", json!({"custom_metadata": "x"}), T0).await,
        Err(LogicalError::BadRequest(_))
    ));
    assert!(matches!(
        put(view, "config", json!({"cas_required": [true]}), T0).await,
        Err(LogicalError::BadRequest(_))
    ));

    // Phase 4: traversal and empty segments are refused before touching storage.
    for path in [
        "data/../config",
        "data/a//b",
        "metadata/../x",
        "destroy/./k",
    ] {
        let refused = put(view, path, json!({"data": {"a": 1}, "versions": [1]}), T0).await;
        assert!(
            matches!(refused, Err(LogicalError::BadRequest(_))),
            "{path}"
        );
    }
    assert!(matches!(
        call(view, Operation::List, "metadata/a/../", json!({}), T0).await,
        Err(LogicalError::BadRequest(_))
    ));

    // Phase 5: operations a route does not have are 405s.
    for (operation, path) in [
        (Operation::Patch, "config"),
        (Operation::List, "data/k"),
        (Operation::Read, "destroy/k"),
        (Operation::Update, "subkeys/k"),
    ] {
        assert_eq!(
            call(view, operation, path, json!({}), T0).await,
            Err(LogicalError::UnsupportedOperation),
            "{path}"
        );
    }

    // Nothing was written by any of the refused requests.
    assert!(fixture.backend.dump().is_empty());
    // Existence checks: config and version routes are always updates.
    assert!(exists(view, &request(Operation::Update, "config", json!({}), T0)).unwrap());
    assert!(
        exists(
            view,
            &request(Operation::Update, "destroy/k", json!({}), T0)
        )
        .unwrap()
    );
}

/// A delete made on a node whose clock is ahead (a primary, read from a secondary whose
/// clock is behind, or the cluster promoted after a failover) is a delete on every node
/// at once: the version does not come back until the reader's clock passes the
/// deletion time. The simulator found this with skewed clusters.
#[tokio::test]
async fn a_delete_holds_on_a_reader_whose_clock_is_behind() {
    let fixture = fixture();
    let view = &fixture.view;
    put(view, "data/k", json!({"data": {"v": "one"}}), T0)
        .await
        .unwrap();
    put(view, "data/k", json!({"data": {"v": "two"}}), T0)
        .await
        .unwrap();
    // Deleted at T0 + 10 by the deleter's clock; read at T0 + 8 by the reader's.
    call(view, Operation::Delete, "data/k", json!({}), T0 + 10)
        .await
        .unwrap();
    let read = call(view, Operation::Read, "data/k", json!({}), T0 + 8)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.status, Some(404), "the deleted version is not served");
    call(
        view,
        Operation::Update,
        "delete/k",
        json!({"versions": [1]}),
        T0 + 10,
    )
    .await
    .unwrap();
    let first = body(
        view,
        Operation::Read,
        "data/k",
        json!({"version": 1}),
        T0 + 8,
    )
    .await;
    assert_eq!(first["data"], Value::Null, "{first}");
    // Undelete restores both, at any clock.
    call(
        view,
        Operation::Update,
        "undelete/k",
        json!({"versions": [1, 2]}),
        T0 + 8,
    )
    .await
    .unwrap();
    let restored = body(view, Operation::Read, "data/k", json!({}), T0 + 8).await;
    assert_eq!(restored["data"], json!({"v": "two"}));
}
