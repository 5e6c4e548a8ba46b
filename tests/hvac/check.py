"""Arca through hvac, the Python Vault client (a client nobody here wrote).

Run by tests/api_hvac.rs against a dev server: `python3 check.py ADDRESS ROOT_TOKEN
AUDIT_FILE`. Each step asserts what Vault answers; the first failure ends the run with its
step's name, and a zero exit means every step held.
"""

import sys

import hvac
from hvac import exceptions

address, root_token, audit_file = sys.argv[1:4]
root = hvac.Client(url=address, token=root_token)
step_name = ""


def step(name):
    global step_name
    step_name = name
    print(f"step: {name}", flush=True)


def expect_error(kind, call):
    try:
        call()
    except kind:
        return
    raise AssertionError(f"expected {kind.__name__}")


try:
    step("the root token authenticates; the node is initialized, unsealed and active")
    assert root.is_authenticated()
    assert root.sys.is_initialized()
    assert not root.sys.is_sealed()
    health = root.sys.read_health_status(method="GET")
    assert health["initialized"] and not health["sealed"] and not health["standby"], health
    assert root.sys.read_leader_status()["is_self"]
    seal = root.sys.read_seal_status()
    assert seal["type"] == "shamir" and seal["sealed"] is False, seal

    step("KV v2 on the dev server's secret/: write, check-and-set, patch, read")
    written = root.secrets.kv.v2.create_or_update_secret(path="app", secret={"password": "hunter2"})
    assert written["data"]["version"] == 1, written
    expect_error(
        exceptions.InvalidRequest,
        lambda: root.secrets.kv.v2.create_or_update_secret(path="app", secret={"password": "x"}, cas=0),
    )
    root.secrets.kv.v2.create_or_update_secret(path="app", secret={"password": "swordfish"}, cas=1)
    root.secrets.kv.v2.patch(path="app", secret={"user": "alice"})
    read = root.secrets.kv.v2.read_secret_version(path="app", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"password": "swordfish", "user": "alice"}, read
    assert read["data"]["metadata"]["version"] == 3, read
    first = root.secrets.kv.v2.read_secret_version(path="app", version=1, raise_on_deleted_version=True)
    assert first["data"]["data"] == {"password": "hunter2"}, first

    step("KV v2 metadata, listing, delete, undelete, destroy and the mount's configuration")
    metadata = root.secrets.kv.v2.read_secret_metadata(path="app")["data"]
    assert metadata["current_version"] == 3 and sorted(metadata["versions"]) == ["1", "2", "3"], metadata
    root.secrets.kv.v2.create_or_update_secret(path="team/db", secret={"k": "v"})
    assert root.secrets.kv.v2.list_secrets(path="")["data"]["keys"] == ["app", "team/"]
    root.secrets.kv.v2.delete_latest_version_of_secret(path="app")
    deleted = root.secrets.kv.v2.read_secret_version(path="app", raise_on_deleted_version=False)
    assert deleted["data"]["data"] is None and deleted["data"]["metadata"]["deletion_time"], deleted
    root.secrets.kv.v2.undelete_secret_versions(path="app", versions=[3])
    assert root.secrets.kv.v2.read_secret_version(path="app", raise_on_deleted_version=True)["data"]["data"]["user"] == "alice"
    root.secrets.kv.v2.destroy_secret_versions(path="app", versions=[1])
    assert root.secrets.kv.v2.read_secret_metadata(path="app")["data"]["versions"]["1"]["destroyed"] is True
    root.secrets.kv.v2.configure(max_versions=5)
    assert root.secrets.kv.v2.read_configuration()["data"]["max_versions"] == 5
    root.secrets.kv.v2.delete_metadata_and_all_versions(path="team/db")
    expect_error(exceptions.InvalidPath, lambda: root.secrets.kv.v2.read_secret_version(path="team/db", raise_on_deleted_version=True))

    step("mounts: enable KV v1, write and read it, tune, move and disable")
    root.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    root.secrets.kv.v1.create_or_update_secret(path="a", secret={"k": "v"}, mount_point="kv1")
    assert root.secrets.kv.v1.read_secret(path="a", mount_point="kv1")["data"] == {"k": "v"}
    assert "kv1/" in root.sys.list_mounted_secrets_engines()["data"]
    root.sys.tune_mount_configuration(path="kv1", default_lease_ttl="1h")
    assert root.sys.read_mount_configuration(path="kv1")["data"]["default_lease_ttl"] == 3600
    root.sys.move_backend("kv1", "kv1-moved")
    assert root.secrets.kv.v1.read_secret(path="a", mount_point="kv1-moved")["data"] == {"k": "v"}
    root.sys.disable_secrets_engine("kv1-moved")
    assert "kv1-moved/" not in root.sys.list_mounted_secrets_engines()["data"]

    step("policies: write, read, list; a token holding one reads what it allows, nothing else")
    root.sys.create_or_update_policy(name="app-read", policy='path "secret/data/app" { capabilities = ["read"] }')
    assert "secret/data/app" in root.sys.read_policy(name="app-read")["data"]["rules"]
    assert "app-read" in root.sys.list_policies()["data"]["policies"]
    created = root.auth.token.create(policies=["app-read"], ttl="1h")["auth"]
    assert sorted(created["policies"]) == ["app-read", "default"], created
    reader = hvac.Client(url=address, token=created["client_token"])
    assert reader.secrets.kv.v2.read_secret_version(path="app", raise_on_deleted_version=True)["data"]["data"]["user"] == "alice"
    expect_error(exceptions.Forbidden, lambda: reader.secrets.kv.v2.create_or_update_secret(path="app", secret={"x": "y"}))
    assert root.sys.get_capabilities(paths=["secret/data/app"], token=created["client_token"])["capabilities"] == ["read"]

    step("tokens: look up, renew, roles, accessors, revoke")
    looked_up = root.auth.token.lookup(created["client_token"])["data"]
    assert looked_up["accessor"] == created["accessor"] and 0 < looked_up["ttl"] <= 3600, looked_up
    assert reader.auth.token.lookup_self()["data"]["id"] == created["client_token"]
    assert root.auth.token.renew(created["client_token"], increment="2h")["auth"]["lease_duration"] == 7200
    assert created["accessor"] in root.auth.token.list_accessors()["data"]["keys"]
    root.auth.token.create_or_update_role("deployer", allowed_policies=["app-read"], orphan=True)
    assert root.auth.token.read_role("deployer")["data"]["allowed_policies"] == ["app-read"]
    from_role = root.auth.token.create(role_name="deployer", policies=["app-read"])["auth"]
    assert from_role["orphan"] is True and "app-read" in from_role["policies"], from_role
    root.auth.token.revoke(created["client_token"])
    assert not reader.is_authenticated()

    step("userpass: enable, create a user, log in, refuse a wrong password")
    root.sys.enable_auth_method("userpass")
    assert "userpass/" in root.sys.list_auth_methods()["data"]
    root.auth.userpass.create_or_update_user("alice", "correct horse", policies=["app-read"])
    assert root.auth.userpass.read_user("alice")["data"]["token_policies"] == ["app-read"]
    assert root.auth.userpass.list_user()["data"]["keys"] == ["alice"]
    user = hvac.Client(url=address)
    login = user.auth.userpass.login("alice", "correct horse")["auth"]
    assert "app-read" in login["policies"] and user.is_authenticated(), login
    assert user.secrets.kv.v2.read_secret_version(path="app", raise_on_deleted_version=True)["data"]["data"]["user"] == "alice"
    expect_error(exceptions.InvalidRequest, lambda: hvac.Client(url=address).auth.userpass.login("alice", "wrong"))

    step("response wrapping: a wrapped token creation, unwrapped once")
    wrapped = root.auth.token.create(policies=["app-read"], wrap_ttl="60s")["wrap_info"]
    assert wrapped["creation_path"] == "auth/token/create", wrapped
    unwrapped = root.sys.unwrap(wrapped["token"])["auth"]
    assert "app-read" in unwrapped["policies"], unwrapped
    expect_error(exceptions.InvalidRequest, lambda: root.sys.unwrap(wrapped["token"]))

    step("audit, keyring and leases")
    root.sys.enable_audit_device("file", options={"file_path": audit_file})
    assert "file/" in root.sys.list_enabled_audit_devices()["data"]
    term = root.sys.get_encryption_key_status()["data"]["term"]
    root.sys.rotate_encryption_key()
    assert root.sys.get_encryption_key_status()["data"]["term"] == term + 1
    assert root.secrets.kv.v2.read_secret_version(path="app", raise_on_deleted_version=True)["data"]["data"]["user"] == "alice"
    assert root.sys.list_leases(prefix="auth/token/create")["data"]["keys"], "token leases are listed"
    root.sys.delete_policy("app-read")
    assert "app-read" not in root.sys.list_policies()["data"]["policies"]
except Exception as error:  # the step's name says where; the exception says what
    print(f"FAILED at step {step_name!r}: {type(error).__name__}: {error}", file=sys.stderr)
    raise
print("every step held")
