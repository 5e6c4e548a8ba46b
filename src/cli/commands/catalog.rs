//! The command tree: every `arca` command and subcommand with its help text and flags.
//! Commands parse their arguments through [`parse`], so what `-h` lists is exactly what
//! a command accepts. The help wording is our own; the flag names, defaults, groups and
//! environment variables are Vault's.

use super::super::Failure;
use super::super::args::{
    DETAILED_FLAG, FORMAT_FLAG, FlagGroup, FlagSpec, HTTP_FLAGS, OUTPUT_FIELD_FLAGS, OUTPUT_FLAGS,
    ParsedArgs, bool_flag, value_flag,
};
use super::super::help::{CommandDoc, find};

/// The commands listed first by `arca -h`, as Vault lists them.
pub const COMMON_COMMANDS: &[&str] = &[
    "read", "write", "delete", "list", "login", "server", "status", "unwrap",
];

const HTTP: FlagGroup = FlagGroup {
    title: "HTTP Options",
    flags: HTTP_FLAGS,
};
const OUTPUT: FlagGroup = FlagGroup {
    title: "Output Options",
    flags: OUTPUT_FLAGS,
};
const OUTPUT_FIELD: FlagGroup = FlagGroup {
    title: "Output Options",
    flags: OUTPUT_FIELD_FLAGS,
};
const OUTPUT_LIST: FlagGroup = FlagGroup {
    title: "Output Options",
    flags: &[DETAILED_FLAG, FORMAT_FLAG],
};

const fn command(title: &'static str, flags: &'static [FlagSpec]) -> FlagGroup {
    FlagGroup { title, flags }
}

// ---- flags of single commands -------------------------------------------------------

const WRITE_FLAGS: &[FlagSpec] = &[bool_flag(&["force", "f"]).usage(
    "Allow the operation to continue with no key=value pairs. This allows writing to keys that do not need or expect data.",
)];

const LOGIN_FLAGS: &[FlagSpec] = &[
    value_flag(&["method"]).default_value("token").usage(
        "Type of authentication to use such as \"userpass\". The method must be enabled at a path of the same name unless -path is given.",
    ),
    value_flag(&["path"]).usage(
        "Remote path in Arca where the auth method is enabled. This defaults to the TYPE of method (e.g. userpass -> userpass/).",
    ),
    bool_flag(&["no-store"]).usage(
        "Do not persist the token to the token helper (usually the local filesystem) after authentication for use in future requests.",
    ),
    bool_flag(&["no-print"]).usage(
        "Do not display the token. The token will still be stored to the configured token helper.",
    ),
    bool_flag(&["token-only"])
        .usage("Output only the token with no verification. This flag is a shortcut for \"-field=token -no-store\"."),
];

const SERVER_FLAGS: &[FlagSpec] = &[
    value_flag(&["config"]).usage("Path to a configuration file in Vault's HCL format."),
    bool_flag(&["dev"]).usage(
        "Enable development mode: the server runs in memory, starts initialized and unsealed, and prints its root token. Never use it in production.",
    ),
    value_flag(&["dev-root-token-id"])
        .environment("VAULT_DEV_ROOT_TOKEN_ID")
        .usage("Initial root token in development mode; random when not given."),
    value_flag(&["dev-listen-address"])
        .default_value("127.0.0.1:8200")
        .environment("VAULT_DEV_LISTEN_ADDRESS")
        .usage("Address to bind to in development mode."),
    bool_flag(&["dev-tls"]).usage(
        "Enable TLS development mode: as -dev, with a generated CA, server certificate and key; the server prints where the CA is for VAULT_CACERT. Never use it in production.",
    ),
    value_flag(&["dev-tls-cert-dir"]).usage(
        "Directory where generated TLS files are created if -dev-tls is specified. If left unset, files are generated in a temporary directory.",
    ),
    value_flag(&["log-level"])
        .default_value("info")
        .environment("VAULT_LOG_LEVEL")
        .usage("Log verbosity: \"trace\", \"debug\", \"info\", \"warn\" or \"error\"."),
    value_flag(&["log-format"])
        .default_value("standard")
        .environment("VAULT_LOG_FORMAT")
        .usage("Log format: \"standard\" (text lines) or \"json\" (one object per line)."),
];

// ---- mounts -------------------------------------------------------------------------

const DESCRIPTION_FLAG: FlagSpec =
    value_flag(&["description"]).usage("Human-friendly description for the purpose of this mount.");
const DEFAULT_LEASE_TTL_FLAG: FlagSpec = value_flag(&["default-lease-ttl"])
    .example("duration")
    .usage("The default lease TTL for this mount. If unspecified, this defaults to the system default.");
const MAX_LEASE_TTL_FLAG: FlagSpec = value_flag(&["max-lease-ttl"]).example("duration").usage(
    "The maximum lease TTL for this mount. If unspecified, this defaults to the system maximum.",
);
const OPTIONS_FLAG: FlagSpec = value_flag(&["options"])
    .example("key=value")
    .usage("Key-value pair provided as key=value for the mount options. This can be specified multiple times.");
const LISTING_VISIBILITY_FLAG: FlagSpec = value_flag(&["listing-visibility"])
    .usage("Determines the visibility of the mount in the UI-specific listing endpoint (\"unauth\" or \"hidden\").");
const AUDIT_NON_HMAC_REQUEST_KEYS_FLAG: FlagSpec = value_flag(&["audit-non-hmac-request-keys"])
    .usage("Key that will not be HMAC'd by audit devices in the request data object. This can be specified multiple times.");
const AUDIT_NON_HMAC_RESPONSE_KEYS_FLAG: FlagSpec = value_flag(&["audit-non-hmac-response-keys"])
    .usage("Key that will not be HMAC'd by audit devices in the response data object. This can be specified multiple times.");
const PASSTHROUGH_REQUEST_HEADERS_FLAG: FlagSpec = value_flag(&["passthrough-request-headers"])
    .usage("Request header value that will be sent to the plugin. This can be specified multiple times.");

const ENABLE_FLAGS: &[FlagSpec] = &[
    value_flag(&["path"]).usage(
        "Place where the mount will be accessible. This must be unique across all mounts. This defaults to the \"type\" of the mount.",
    ),
    DESCRIPTION_FLAG,
    value_flag(&["version"])
        .example("int")
        .usage("Select the version of the engine to run (KV only: 1 or 2)."),
    DEFAULT_LEASE_TTL_FLAG,
    MAX_LEASE_TTL_FLAG,
    OPTIONS_FLAG,
    LISTING_VISIBILITY_FLAG,
    AUDIT_NON_HMAC_REQUEST_KEYS_FLAG,
    AUDIT_NON_HMAC_RESPONSE_KEYS_FLAG,
    PASSTHROUGH_REQUEST_HEADERS_FLAG,
    bool_flag(&["local"]).usage(
        "Mark the mount as a local-only mount. Local mounts are not replicated nor (if a secondary) removed by replication.",
    ),
    bool_flag(&["seal-wrap"]).usage("Enable seal wrapping of critical values in the mount."),
    bool_flag(&["force-no-cache"]).usage("Force the mount to not cache responses."),
    bool_flag(&["external-entropy-access"]).usage("Enable access to external entropy for the mount."),
];

const TUNE_FLAGS: &[FlagSpec] = &[
    DESCRIPTION_FLAG,
    DEFAULT_LEASE_TTL_FLAG,
    MAX_LEASE_TTL_FLAG,
    OPTIONS_FLAG,
    LISTING_VISIBILITY_FLAG,
    AUDIT_NON_HMAC_REQUEST_KEYS_FLAG,
    AUDIT_NON_HMAC_RESPONSE_KEYS_FLAG,
    PASSTHROUGH_REQUEST_HEADERS_FLAG,
    value_flag(&["version"])
        .example("int")
        .usage("Select the version of the engine to run (KV only: upgrading 1 to 2)."),
];

// ---- kv -----------------------------------------------------------------------------

const MOUNT_FLAG: FlagSpec = value_flag(&["mount"]).usage(
    "Specifies the path where the KV backend is mounted. If specified, the next argument will be interpreted as the secret path. If this flag is not specified, the next argument will be interpreted as the combined mount path and secret path, with /data/ automatically appended between KV v2 secrets.",
);
const KV_COMMON: FlagGroup = command("Common Options", &[MOUNT_FLAG]);
const VERSIONS_FLAG: FlagSpec = value_flag(&["versions"])
    .example("int,int,...")
    .usage("Specifies the version numbers, separated by commas.");
const CAS_FLAG: FlagSpec = value_flag(&["cas"]).example("int").default_value("-1").usage(
    "Specifies to use a Check-And-Set operation. If not set the write will be allowed. If set to 0 a write will only be allowed if the key doesn't exist. If the index is non-zero the write will only be allowed if the key's current version matches the version specified in the cas parameter.",
);
const KV_PUT_FLAGS: &[FlagSpec] = &[CAS_FLAG];
const KV_PATCH_FLAGS: &[FlagSpec] = &[
    CAS_FLAG,
    value_flag(&["method"]).default_value("patch").usage(
        "Specifies which method of patching to use. \"patch\" sends an HTTP PATCH request (a JSON merge patch); \"rw\" reads the current version, merges locally and writes it back with check-and-set.",
    ),
];
const KV_GET_FLAGS: &[FlagSpec] = &[value_flag(&["version"])
    .example("int")
    .usage("If passed, the value at the version number will be returned.")];
const KV_DELETE_FLAGS: &[FlagSpec] = &[VERSIONS_FLAG];
const KV_ROLLBACK_FLAGS: &[FlagSpec] = &[value_flag(&["version"])
    .example("int")
    .usage("Specifies the version number that should be made current again.")];
const KV_METADATA_FLAGS: &[FlagSpec] = &[
    value_flag(&["max-versions"]).example("int").usage(
        "The number of versions to keep. If not set, the backend's configured max version is used.",
    ),
    bool_flag(&["cas-required"]).usage(
        "If true the key will require the cas parameter to be set on all write requests. If false, the backend's configuration will be used.",
    ),
    value_flag(&["delete-version-after"]).example("duration").usage(
        "Specifies the length of time before a version is deleted. If not set, the backend's configured delete-version-after is used. Cannot be greater than the backend's delete-version-after. The delete-version-after is specified as a numeric string with a suffix like \"30s\" or \"3h25m19s\".",
    ),
    value_flag(&["custom-metadata"]).example("key=value").usage(
        "Specifies arbitrary version-agnostic key=value metadata meant to describe a secret. This can be specified multiple times to add multiple pieces of metadata.",
    ),
];

// ---- tokens, leases, audit, operator ------------------------------------------------

const TOKEN_CREATE_FLAGS: &[FlagSpec] = &[
    value_flag(&["policy"]).usage(
        "Name of a policy to associate with this token. This can be specified multiple times to attach multiple policies.",
    ),
    value_flag(&["ttl"]).example("duration").usage(
        "Initial TTL to associate with the token. Token renewals may be able to extend beyond this value, depending on the configured maximum TTLs.",
    ),
    value_flag(&["explicit-max-ttl"])
        .example("duration")
        .usage("Explicit maximum lifetime for the token. Unlike normal TTLs, the maximum TTL is a hard limit and cannot be exceeded."),
    value_flag(&["period"])
        .example("duration")
        .usage("If specified, every renewal will use the given period. Periodic tokens do not expire as long as they are actively being renewed."),
    value_flag(&["display-name"]).usage("Name to associate with this token."),
    value_flag(&["use-limit"])
        .example("int")
        .usage("Number of times this token can be used. After the last use, the token is automatically revoked. By default, tokens can be used an unlimited number of times."),
    value_flag(&["type"])
        .default_value("service")
        .usage("The type of token to create: \"service\" or \"batch\"."),
    value_flag(&["id"]).usage("Value for the token. By default, this is an auto-generated string."),
    value_flag(&["role"]).usage("Name of the role to create the token against."),
    value_flag(&["metadata"])
        .example("key=value")
        .usage("Arbitrary key=value metadata to associate with the token. This can be specified multiple times."),
    bool_flag(&["orphan"]).usage("Create the token with no parent. This prevents the token from being revoked when the token which created it expires."),
    bool_flag(&["no-default-policy"]).usage("Detach the \"default\" policy from the policy set for this token."),
    value_flag(&["renewable"])
        .example("bool")
        .default_value("true")
        .usage("Allow the token to be renewed up to its maximum TTL."),
];
const TOKEN_LOOKUP_FLAGS: &[FlagSpec] =
    &[bool_flag(&["accessor"]).usage("Treat the argument as an accessor instead of a token.")];
const TOKEN_RENEW_FLAGS: &[FlagSpec] = &[value_flag(&["increment", "i"]).example("duration").usage(
    "Request a specific increment for renewal. The server is not required to honor this request. If not supplied, the server will use the default TTL.",
)];
const TOKEN_REVOKE_FLAGS: &[FlagSpec] = &[
    bool_flag(&["accessor"]).usage("Treat the argument as an accessor instead of a token."),
    bool_flag(&["self"]).usage("Perform the revocation on the currently authenticated token."),
    value_flag(&["mode"]).usage(
        "Type of revocation to perform. If unspecified, the token and all its children are revoked. \"orphan\" revokes only the token and leaves its children as orphans.",
    ),
];
const TOKEN_CAPABILITIES_FLAGS: &[FlagSpec] =
    &[bool_flag(&["accessor"]).usage("Treat the argument as an accessor instead of a token.")];

const LEASE_RENEW_FLAGS: &[FlagSpec] = &[value_flag(&["increment", "i"]).example("duration").usage(
    "Request a specific increment in seconds. The server is not required to honor this request.",
)];
const LEASE_REVOKE_FLAGS: &[FlagSpec] = &[
    bool_flag(&["prefix"]).usage(
        "Treat the ID as a prefix instead of an exact lease ID. This can revoke multiple leases simultaneously.",
    ),
    bool_flag(&["force", "f"]).usage(
        "Delete the lease from storage and ignore any errors from the secrets engine; only with -prefix. This is dangerous and should be a last resort.",
    ),
];

const AUDIT_ENABLE_FLAGS: &[FlagSpec] = &[
    value_flag(&["path"]).usage(
        "Place where the audit device will be accessible. This defaults to the type of the device.",
    ),
    value_flag(&["description"])
        .usage("Human-friendly description for the purpose of this audit device."),
    bool_flag(&["local"])
        .usage("Mark the audit device as a local-only device. Local devices are not replicated."),
];

const INIT_FLAGS: &[FlagSpec] = &[
    value_flag(&["key-shares", "n"])
        .example("int")
        .default_value("5")
        .usage("Number of key shares to split the generated root key into. This is the number of \"unseal keys\" to generate."),
    value_flag(&["key-threshold", "t"])
        .example("int")
        .default_value("3")
        .usage("Number of key shares required to reconstruct the root key. This must be less than or equal to -key-shares."),
    bool_flag(&["status"]).usage(
        "Print the current initialization status. An exit code of 0 means the server is already initialized. An exit code of 1 means an error occurred. An exit code of 2 means the server is not initialized.",
    ),
];
const UNSEAL_FLAGS: &[FlagSpec] =
    &[bool_flag(&["reset"]).usage("Discard any previously entered keys to the unseal process.")];
const GENERATE_ROOT_FLAGS: &[FlagSpec] = &[
    bool_flag(&["init"]).usage(
        "Start a root token generation. This can only be done if there is not currently one in progress.",
    ),
    bool_flag(&["cancel"]).usage(
        "Reset the root token generation progress. This will discard any submitted unseal keys or configuration.",
    ),
    bool_flag(&["status"])
        .usage("Print the status of the current attempt without providing an unseal key."),
    value_flag(&["decode"])
        .usage("The value to decode; setting this triggers a decode operation."),
    bool_flag(&["generate-otp"]).usage(
        "Generate and print a high-entropy one-time-password (OTP) suitable for use with the \"-init\" flag.",
    ),
    value_flag(&["otp"]).usage("OTP code to use with \"-decode\" or \"-init\"."),
    value_flag(&["pgp-key"]).usage(
        "Accepted for compatibility; PGP-encrypted tokens are not supported by this server, which refuses them.",
    ),
    value_flag(&["nonce"]).usage(
        "Nonce value provided at initialization. The same nonce value must be provided with each unseal key.",
    ),
];
const REKEY_FLAGS: &[FlagSpec] = &[
    bool_flag(&["init"]).usage(
        "Initialize the rekeying operation. This can only be done if no rekeying operation is in progress. Customize the new number of key shares and key threshold using the -key-shares and -key-threshold flags.",
    ),
    bool_flag(&["cancel"]).usage(
        "Reset the rekeying progress. This will discard any submitted unseal keys or configuration.",
    ),
    bool_flag(&["status"])
        .usage("Print the status of the current attempt without providing an unseal key."),
    value_flag(&["key-shares", "n"])
        .example("int")
        .default_value("5")
        .usage("Number of key shares to split the generated root key into. This is the number of \"unseal keys\" to generate."),
    value_flag(&["key-threshold", "t"])
        .example("int")
        .default_value("3")
        .usage("Number of key shares required to reconstruct the root key. This must be less than or equal to -key-shares."),
    value_flag(&["nonce"]).usage(
        "Nonce value provided at initialization. The same nonce value must be provided with each unseal key.",
    ),
    value_flag(&["target"])
        .default_value("barrier")
        .usage("Target for rekeying. \"recovery\" only applies when HSM support is enabled, which Arca does not have."),
    bool_flag(&["verify"]).usage(
        "Indicates that the action (-status, -cancel, or providing a key share) will be affecting verification for the current rekey attempt.",
    ),
    value_flag(&["pgp-keys"]).usage(
        "Accepted for compatibility; PGP-encrypted unseal keys are not supported by this server, which refuses them.",
    ),
    bool_flag(&["backup"]).usage(
        "Store a backup of the current PGP encrypted unseal keys in the core; only with -pgp-keys, so never accepted here.",
    ),
    bool_flag(&["backup-delete"]).usage("Delete any stored backup unseal keys."),
    bool_flag(&["backup-retrieve"]).usage(
        "Retrieve the backed-up unseal keys. This option is only available if the PGP keys were provided and the backup has not been deleted.",
    ),
];
const JOIN_FLAGS: &[FlagSpec] = &[
    value_flag(&["leader-ca-cert"])
        .usage("CA cert to use when verifying the Raft leader certificate (contents or @file)."),
    value_flag(&["leader-client-cert"])
        .usage("Client cert to use when authenticating with the Raft leader (contents or @file)."),
    value_flag(&["leader-client-key"])
        .usage("Client key to use when authenticating with the Raft leader (contents or @file)."),
    bool_flag(&["retry"]).usage("Continuously retry joining the Raft cluster upon failures."),
    bool_flag(&["non-voter"]).usage("Make this server a non-voting member of the Raft cluster."),
];

const SNAPSHOT_RESTORE_FLAGS: &[FlagSpec] = &[bool_flag(&["force"]).usage(
    "Installs the provided snapshot regardless of whether it was taken under this cluster's keys. Afterwards the cluster is sealed and needs the snapshot's unseal keys.",
)];

const MONITOR_FLAGS: &[FlagSpec] = &[
    value_flag(&["log-level"]).default_value("info").usage(
        "If passed, the log level to monitor logs. Supported values (in order of detail) are \"trace\", \"debug\", \"info\", \"warn\" and \"error\". These are not case sensitive.",
    ),
    value_flag(&["log-format"])
        .default_value("standard")
        .usage("Output format of logs. Supported values are \"standard\" and \"json\"."),
];

const HTTP_OUTPUT: &[FlagGroup] = &[HTTP, OUTPUT];
const HTTP_OUTPUT_FIELD: &[FlagGroup] = &[HTTP, OUTPUT_FIELD];
const HTTP_ONLY: &[FlagGroup] = &[HTTP];

const fn parent(
    path: &'static str,
    synopsis: &'static str,
    usage: &'static str,
    description: &'static str,
) -> CommandDoc {
    CommandDoc {
        path,
        synopsis,
        usage,
        description,
        examples: &[],
        groups: &[],
    }
}

/// Every command, parents before their children.
pub const CATALOG: &[CommandDoc] = &[
    CommandDoc {
        path: "read",
        synopsis: "Read data and retrieves secrets",
        usage: "read [options] PATH [K=V...]",
        description: "Reads data from Arca at the given path. This can be used to read secrets, generate dynamic credentials, get configuration details, and more. Key=value pairs are sent as query parameters.",
        examples: &["read secret/foo", "read -field=password kv/creds"],
        groups: HTTP_OUTPUT_FIELD,
    },
    CommandDoc {
        path: "write",
        synopsis: "Write data, configuration, and secrets",
        usage: "write [options] PATH [DATA K=V...]",
        description: "Writes data to Arca at the given path. The data can be credentials, secrets, configuration, or arbitrary data. Values that begin with \"@\" are loaded from a file; a value of \"-\" is read from stdin.",
        examples: &[
            "write auth/userpass/users/tester password=changeme policies=superuser",
            "write -f sys/replication/performance/primary/enable",
        ],
        groups: &[HTTP, OUTPUT_FIELD, command("Command Options", WRITE_FLAGS)],
    },
    CommandDoc {
        path: "delete",
        synopsis: "Delete secrets and configuration",
        usage: "delete [options] PATH",
        description: "Deletes secrets and configuration from Arca at the given path. The behavior of \"delete\" is delegated to the backend corresponding to the given path.",
        examples: &["delete secret/my-secret"],
        groups: HTTP_OUTPUT,
    },
    CommandDoc {
        path: "list",
        synopsis: "List data or secrets",
        usage: "list [options] PATH",
        description: "Lists data from Arca at the given path. This can be used to list keys in a given secrets engine.",
        examples: &["list secret/", "list -format=json sys/policies/acl"],
        groups: &[HTTP, OUTPUT_LIST],
    },
    CommandDoc {
        path: "login",
        synopsis: "Authenticate locally",
        usage: "login [options] [AUTH K=V...]",
        description: "Authenticates users or machines to Arca using the provided arguments. A successful authentication results in a token, stored in the token helper ($HOME/.arca-token) unless -no-store is given. With no -method, the token auth method is used and the token is read from the argument or asked for.",
        examples: &["login root", "login -method=userpass username=tester"],
        groups: &[HTTP, OUTPUT_FIELD, command("Command Options", LOGIN_FLAGS)],
    },
    CommandDoc {
        path: "server",
        synopsis: "Start an Arca server",
        usage: "server [options]",
        description: "Starts an Arca server that responds to API requests. By default it reads its configuration (Vault's HCL) from -config; -dev starts an in-memory development server instead.",
        examples: &[
            "server -config=node1.hcl",
            "server -dev -dev-root-token-id=root",
        ],
        groups: &[command("Command Options", SERVER_FLAGS)],
    },
    CommandDoc {
        path: "status",
        synopsis: "Print seal and HA status",
        usage: "status [options]",
        description: "Prints the current state of the server including whether it is sealed and if HA mode is enabled. The exit code is 0 when unsealed, 2 when sealed and 1 on an error.",
        examples: &["status"],
        groups: HTTP_OUTPUT,
    },
    CommandDoc {
        path: "unwrap",
        synopsis: "Unwrap a wrapped secret",
        usage: "unwrap [options] [TOKEN]",
        description: "Unwraps a wrapped secret from Arca by the given token. The result is the same as the \"arca read\" operation on the non-wrapped secret. If no token is given, the data in the currently authenticated token is unwrapped.",
        examples: &["unwrap 3de9ece1-b347-e143-29b0-dc2dc31caafd"],
        groups: HTTP_OUTPUT_FIELD,
    },
    CommandDoc {
        path: "path-help",
        synopsis: "Retrieve API help for paths",
        usage: "path-help [options] PATH",
        description: "Retrieves API help for paths. All endpoints in Arca provide built-in help in markdown format; the server answers \"?help=1\" requests. Paths without help are reported as such.",
        examples: &["path-help sys/mounts"],
        groups: HTTP_OUTPUT,
    },
    CommandDoc {
        path: "version",
        synopsis: "Prints the Arca CLI version",
        usage: "version",
        description: "Prints the version of this Arca CLI. This does not print the target server's version.",
        examples: &["version"],
        groups: &[],
    },
    CommandDoc {
        path: "version-history",
        synopsis: "Prints the version history of the target Arca server",
        usage: "version-history [options]",
        description: "Prints the versions of Arca the target cluster has run, in the order they were installed, with when each was first unsealed and its build date.",
        examples: &["version-history", "version-history -format=json"],
        groups: HTTP_OUTPUT,
    },
    CommandDoc {
        path: "monitor",
        synopsis: "Stream log messages from an Arca server",
        usage: "monitor [options]",
        description: "Streams log messages of the Arca server at the given address until interrupted. The messages are the server's own, at the level asked for (which may be more detailed than the server's log level), in the standard or JSON format. The active node answers; the token needs read and sudo on sys/monitor.",
        examples: &["monitor", "monitor -log-level=debug -log-format=json"],
        groups: &[HTTP, command("Monitor Options", MONITOR_FLAGS)],
    },
    parent(
        "print",
        "Prints runtime configurations",
        "print <subcommand>",
        "This command groups subcommands for interacting with the CLI's runtime values.",
    ),
    CommandDoc {
        path: "print token",
        synopsis: "Prints the token the CLI will use",
        usage: "print token",
        description: "Prints the value of the token the CLI will use, from VAULT_TOKEN or the token helper, as the X-Vault-Token header of its requests.",
        examples: &["print token"],
        groups: &[],
    },
    // ---- policy
    parent(
        "policy",
        "Interact with policies",
        "policy <subcommand> [options] [args]",
        "This command groups subcommands for interacting with policies. Users can write, read, and list policies in Arca.",
    ),
    CommandDoc {
        path: "policy write",
        synopsis: "Uploads a named policy from a file",
        usage: "policy write [options] NAME PATH",
        description: "Uploads a policy with name NAME from the contents of a local file PATH or stdin. If PATH is \"-\", the policy is read from stdin.",
        examples: &[
            "policy write my-policy /tmp/policy.hcl",
            "policy write superuser -",
        ],
        groups: HTTP_ONLY,
    },
    CommandDoc {
        path: "policy read",
        synopsis: "Prints the contents of a policy",
        usage: "policy read [options] [NAME]",
        description: "Prints the contents and metadata of the policy named NAME.",
        examples: &["policy read my-policy"],
        groups: HTTP_OUTPUT,
    },
    CommandDoc {
        path: "policy list",
        synopsis: "Lists the installed policies",
        usage: "policy list [options]",
        description: "Lists the names of the policies that are installed on the server.",
        examples: &["policy list"],
        groups: HTTP_OUTPUT,
    },
    CommandDoc {
        path: "policy delete",
        synopsis: "Deletes a policy by name",
        usage: "policy delete [options] NAME",
        description: "Deletes the policy named NAME. Tokens that carry the policy keep it in their list, but it grants nothing once deleted.",
        examples: &["policy delete my-policy"],
        groups: HTTP_ONLY,
    },
    CommandDoc {
        path: "policy fmt",
        synopsis: "Formats a policy on disk",
        usage: "policy fmt [options] PATH",
        description: "Formats a local policy file to the policy specification. The file is parsed and checked as HCL, then rewritten in place in canonical form. This does not talk to the server.",
        examples: &["policy fmt my-policy.hcl"],
        groups: &[],
    },
    // ---- secrets
    parent(
        "secrets",
        "Interact with secrets engines",
        "secrets <subcommand> [options] [args]",
        "This command groups subcommands for interacting with secrets engines: enabling, disabling, tuning and listing them.",
    ),
    CommandDoc {
        path: "secrets enable",
        synopsis: "Enable a secrets engine",
        usage: "secrets enable [options] TYPE",
        description: "Enables a secrets engine of type TYPE. By default it is enabled at a path named after its type; -path changes that.",
        examples: &[
            "secrets enable -path=kv kv-v2",
            "secrets enable -local -path=us_west_data kv-v2",
        ],
        groups: &[HTTP, command("Command Options", ENABLE_FLAGS)],
    },
    CommandDoc {
        path: "secrets disable",
        synopsis: "Disable a secrets engine",
        usage: "secrets disable [options] PATH",
        description: "Disables the secrets engine at PATH. All secrets created by it are revoked and its data is deleted.",
        examples: &["secrets disable kv/"],
        groups: HTTP_ONLY,
    },
    CommandDoc {
        path: "secrets move",
        synopsis: "Move a secrets engine to a new path",
        usage: "secrets move [options] SOURCE DESTINATION",
        description: "Moves an existing secrets engine to a new path. Its data moves with it; leases issued under the old path are revoked. The command waits until the move is finished.",
        examples: &["secrets move secret/ generic/"],
        groups: HTTP_ONLY,
    },
    CommandDoc {
        path: "secrets list",
        synopsis: "List enabled secrets engines",
        usage: "secrets list [options]",
        description: "Lists the enabled secrets engines with their paths, types, accessors and descriptions; -detailed adds TTLs, replication and options.",
        examples: &["secrets list", "secrets list -detailed"],
        groups: &[HTTP, OUTPUT_LIST],
    },
    CommandDoc {
        path: "secrets tune",
        synopsis: "Tune a secrets engine configuration",
        usage: "secrets tune [options] PATH",
        description: "Tunes the configuration options for the secrets engine at PATH.",
        examples: &["secrets tune -default-lease-ttl=72h pki/"],
        groups: &[HTTP, command("Command Options", TUNE_FLAGS)],
    },
    // ---- auth
    parent(
        "auth",
        "Interact with auth methods",
        "auth <subcommand> [options] [args]",
        "This command groups subcommands for interacting with auth methods: enabling, disabling, tuning and listing them.",
    ),
    CommandDoc {
        path: "auth enable",
        synopsis: "Enables a new auth method",
        usage: "auth enable [options] TYPE",
        description: "Enables a new auth method of type TYPE at a path named after its type, or at -path.",
        examples: &["auth enable userpass", "auth enable -path=people userpass"],
        groups: &[HTTP, command("Command Options", ENABLE_FLAGS)],
    },
    CommandDoc {
        path: "auth disable",
        synopsis: "Disables an auth method",
        usage: "auth disable [options] PATH",
        description: "Disables the auth method at PATH. Tokens issued by it are revoked.",
        examples: &["auth disable userpass/"],
        groups: HTTP_ONLY,
    },
    CommandDoc {
        path: "auth move",
        synopsis: "Move an auth method to a new path",
        usage: "auth move [options] SOURCE DESTINATION",
        description: "Moves an existing auth method to a new path. Its users and roles move with it; leases issued under the old path are revoked. The command waits until the move is finished.",
        examples: &["auth move userpass/ people/"],
        groups: HTTP_ONLY,
    },
    CommandDoc {
        path: "auth help",
        synopsis: "Prints usage for an auth method",
        usage: "auth help [options] TYPE | PATH",
        description: "Prints usage and help for an auth method: how to log in with it and the key=value pairs its login takes. Given a TYPE (\"userpass\", \"token\") no server is needed; given the PATH of an enabled method, the server is asked for its type.",
        examples: &["auth help userpass", "auth help people/"],
        groups: HTTP_ONLY,
    },
    CommandDoc {
        path: "auth list",
        synopsis: "Lists enabled auth methods",
        usage: "auth list [options]",
        description: "Lists the enabled auth methods with their paths, types, accessors and descriptions.",
        examples: &["auth list"],
        groups: &[HTTP, OUTPUT_LIST],
    },
    CommandDoc {
        path: "auth tune",
        synopsis: "Tunes an auth method configuration",
        usage: "auth tune [options] PATH",
        description: "Tunes the configuration options for the auth method at PATH.",
        examples: &["auth tune -default-lease-ttl=72h userpass/"],
        groups: &[HTTP, command("Command Options", TUNE_FLAGS)],
    },
    // ---- kv
    parent(
        "kv",
        "Interact with the key/value secrets engine",
        "kv <subcommand> [options] [args]",
        "This command has subcommands for interacting with the key/value secrets engine, version 1 or 2. They hide version 2's data/ and metadata/ path prefixes: the mount and its version are looked up first.",
    ),
    CommandDoc {
        path: "kv put",
        synopsis: "Sets or updates data in the KV store",
        usage: "kv put [options] KEY [DATA]",
        description: "Writes the data to the given path in the key/value store. On version 2 this creates a new version. The data can be of any type; values that begin with \"@\" are loaded from a file, and \"-\" reads stdin.",
        examples: &[
            "kv put -mount=secret foo bar=baz",
            "kv put -mount=secret -cas=1 foo bar=baz",
        ],
        groups: &[
            HTTP,
            OUTPUT_FIELD,
            KV_COMMON,
            command("Command Options", KV_PUT_FLAGS),
        ],
    },
    CommandDoc {
        path: "kv get",
        synopsis: "Retrieves data from the KV store",
        usage: "kv get [options] KEY",
        description: "Retrieves the value at the given key. On version 2 the latest version is returned unless -version is given.",
        examples: &[
            "kv get -mount=secret foo",
            "kv get -mount=secret -version=1 foo",
        ],
        groups: &[
            HTTP,
            OUTPUT_FIELD,
            KV_COMMON,
            command("Command Options", KV_GET_FLAGS),
        ],
    },
    CommandDoc {
        path: "kv list",
        synopsis: "List data or secrets",
        usage: "kv list [options] PATH",
        description: "Lists the keys at the given path in the key/value store. Keys ending in \"/\" are folders.",
        examples: &["kv list -mount=secret my-app/"],
        groups: &[HTTP, OUTPUT_LIST, KV_COMMON],
    },
    CommandDoc {
        path: "kv delete",
        synopsis: "Deletes versions in the KV store",
        usage: "kv delete [options] PATH",
        description: "Deletes the data for the given path. On version 2 the latest version is soft-deleted (it can be undeleted) unless -versions names others.",
        examples: &[
            "kv delete -mount=secret foo",
            "kv delete -mount=secret -versions=3,4 foo",
        ],
        groups: &[
            HTTP,
            OUTPUT,
            KV_COMMON,
            command("Command Options", KV_DELETE_FLAGS),
        ],
    },
    CommandDoc {
        path: "kv undelete",
        synopsis: "Undeletes versions in the KV store",
        usage: "kv undelete [options] KEY",
        description: "Undeletes the data for the provided versions and path in the key/value store (version 2 only), restoring them for reads.",
        examples: &["kv undelete -mount=secret -versions=3 foo"],
        groups: &[
            HTTP,
            OUTPUT,
            KV_COMMON,
            command("Command Options", KV_DELETE_FLAGS),
        ],
    },
    CommandDoc {
        path: "kv destroy",
        synopsis: "Permanently removes one or more versions in the KV store",
        usage: "kv destroy [options] KEY",
        description: "Permanently removes the specified versions' data from the key/value store (version 2 only). The metadata stays; the data cannot be recovered.",
        examples: &["kv destroy -mount=secret -versions=11 foo"],
        groups: &[
            HTTP,
            OUTPUT,
            KV_COMMON,
            command("Command Options", KV_DELETE_FLAGS),
        ],
    },
    CommandDoc {
        path: "kv patch",
        synopsis: "Sets or updates data in the KV store without overwriting",
        usage: "kv patch [options] KEY [DATA]",
        description: "Writes the data to the given path, merging it into the latest version's data (version 2 only): keys not given keep their values.",
        examples: &["kv patch -mount=secret foo bar=baz"],
        groups: &[
            HTTP,
            OUTPUT_FIELD,
            KV_COMMON,
            command("Command Options", KV_PATCH_FLAGS),
        ],
    },
    CommandDoc {
        path: "kv rollback",
        synopsis: "Rolls back to a previous version of data",
        usage: "kv rollback [options] KEY",
        description: "Restores a given previous version to the current version at the given path. The value is written as a new version; the rolled-back-to version must not be deleted or destroyed.",
        examples: &["kv rollback -mount=secret -version=2 foo"],
        groups: &[
            HTTP,
            OUTPUT_FIELD,
            KV_COMMON,
            command("Command Options", KV_ROLLBACK_FLAGS),
        ],
    },
    CommandDoc {
        path: "kv enable-versioning",
        synopsis: "Turns on versioning for a KV store",
        usage: "kv enable-versioning [options] KEY",
        description: "Turns on versioning for the backend at the provided path: a version 1 mount becomes version 2, and its data is upgraded in place.",
        examples: &["kv enable-versioning secret"],
        groups: HTTP_ONLY,
    },
    parent(
        "kv metadata",
        "Interact with the metadata of KV v2 keys",
        "kv metadata <subcommand> [options] [args]",
        "This command has subcommands for interacting with the metadata endpoint of the key/value store, version 2 only: the key's settings and its version history.",
    ),
    CommandDoc {
        path: "kv metadata get",
        synopsis: "Retrieves key metadata from the KV store",
        usage: "kv metadata get [options] KEY",
        description: "Retrieves the metadata from the key/value store at the given key name. If no key exists with that name, an error is returned.",
        examples: &["kv metadata get -mount=secret foo"],
        groups: &[HTTP, OUTPUT, KV_COMMON],
    },
    CommandDoc {
        path: "kv metadata put",
        synopsis: "Sets or updates key settings in the KV store",
        usage: "kv metadata put [options] KEY",
        description: "Creates a blank key in the key/value store with the provided metadata, or updates the settings of an existing key. Settings not given keep their values; -custom-metadata replaces the whole custom metadata map.",
        examples: &[
            "kv metadata put -mount=secret -max-versions=5 foo",
            "kv metadata put -mount=secret -custom-metadata=foo=abc -custom-metadata=bar=123 foo",
        ],
        groups: &[
            HTTP,
            OUTPUT,
            KV_COMMON,
            command("Command Options", KV_METADATA_FLAGS),
        ],
    },
    CommandDoc {
        path: "kv metadata patch",
        synopsis: "Patches key settings in the KV store",
        usage: "kv metadata patch [options] KEY",
        description: "Updates the settings of an existing key with a JSON merge patch: only the settings given change, and -custom-metadata keys are merged into the existing map.",
        examples: &["kv metadata patch -mount=secret -max-versions=5 foo"],
        groups: &[
            HTTP,
            OUTPUT,
            KV_COMMON,
            command("Command Options", KV_METADATA_FLAGS),
        ],
    },
    CommandDoc {
        path: "kv metadata delete",
        synopsis: "Deletes all versions and metadata for a key in the KV store",
        usage: "kv metadata delete [options] PATH",
        description: "Deletes all versions and metadata for the provided key. This cannot be undone.",
        examples: &["kv metadata delete -mount=secret foo"],
        groups: &[HTTP, KV_COMMON],
    },
    // ---- token
    parent(
        "token",
        "Interact with tokens",
        "token <subcommand> [options] [args]",
        "This command groups subcommands for interacting with tokens: creating, looking up, renewing and revoking them, and checking their capabilities.",
    ),
    CommandDoc {
        path: "token create",
        synopsis: "Create a new token",
        usage: "token create [options]",
        description: "Creates a new token that can be used for authentication. The token is a child of the current token unless -orphan is given, and it carries at most the current token's policies.",
        examples: &["token create -policy=my-policy -ttl=1h"],
        groups: &[
            HTTP,
            OUTPUT_FIELD,
            command("Command Options", TOKEN_CREATE_FLAGS),
        ],
    },
    CommandDoc {
        path: "token lookup",
        synopsis: "Display information about a token",
        usage: "token lookup [options] [TOKEN | ACCESSOR]",
        description: "Displays information about a token or accessor. If no token is given, the locally authenticated token is looked up.",
        examples: &[
            "token lookup",
            "token lookup -accessor 9793c9b3-e04a-46f3-e7b8-748d7da248da",
        ],
        groups: &[
            HTTP,
            OUTPUT_FIELD,
            command("Command Options", TOKEN_LOOKUP_FLAGS),
        ],
    },
    CommandDoc {
        path: "token renew",
        synopsis: "Renew a token lease",
        usage: "token renew [options] [TOKEN]",
        description: "Renews a token's lease, extending the amount of time it can be used. If no token is given, the locally authenticated token is renewed.",
        examples: &["token renew -increment=30m"],
        groups: &[
            HTTP,
            OUTPUT_FIELD,
            command("Command Options", TOKEN_RENEW_FLAGS),
        ],
    },
    CommandDoc {
        path: "token revoke",
        synopsis: "Revoke a token and its children",
        usage: "token revoke [options] [TOKEN | ACCESSOR]",
        description: "Revokes authentication tokens and their children. If a TOKEN is not provided, -self revokes the locally authenticated token.",
        examples: &[
            "token revoke 96ddf4bc-d217-f3ba-f9bd-017055595017",
            "token revoke -self",
        ],
        groups: &[HTTP, command("Command Options", TOKEN_REVOKE_FLAGS)],
    },
    CommandDoc {
        path: "token capabilities",
        synopsis: "Print capabilities of a token on a path",
        usage: "token capabilities [options] [TOKEN | ACCESSOR] PATH",
        description: "Fetches the capabilities of a token or accessor for a given path. If no token is given, the locally authenticated token is used.",
        examples: &[
            "token capabilities secret/foo",
            "token capabilities 96ddf4bc-d217-f3ba-f9bd-017055595017 secret/foo",
        ],
        groups: &[
            HTTP,
            OUTPUT,
            command("Command Options", TOKEN_CAPABILITIES_FLAGS),
        ],
    },
    // ---- lease
    parent(
        "lease",
        "Interact with leases",
        "lease <subcommand> [options] [args]",
        "This command groups subcommands for interacting with leases: looking them up, renewing and revoking them.",
    ),
    CommandDoc {
        path: "lease lookup",
        synopsis: "Lookup the lease of a secret",
        usage: "lease lookup [options] ID",
        description: "Looks up the lease information of a secret: its issue and expiry times, TTL and whether it can be renewed.",
        examples: &["lease lookup database/creds/readonly/2f6a614c-4aa2-7b19-24b9-ad944a8d4de6"],
        groups: HTTP_OUTPUT,
    },
    CommandDoc {
        path: "lease renew",
        synopsis: "Renews the lease of a secret",
        usage: "lease renew [options] ID",
        description: "Renews the lease on a secret, extending the time that it can be used before it is revoked.",
        examples: &[
            "lease renew -increment=1h database/creds/readonly/2f6a614c-4aa2-7b19-24b9-ad944a8d4de6",
        ],
        groups: &[HTTP, OUTPUT, command("Command Options", LEASE_RENEW_FLAGS)],
    },
    CommandDoc {
        path: "lease revoke",
        synopsis: "Revokes leases and secrets",
        usage: "lease revoke [options] ID",
        description: "Revokes secrets by their lease ID, or (with -prefix) every lease under a prefix.",
        examples: &[
            "lease revoke database/creds/readonly/2f6a614c-4aa2-7b19-24b9-ad944a8d4de6",
            "lease revoke -prefix aws/creds/deploy",
        ],
        groups: &[HTTP, command("Command Options", LEASE_REVOKE_FLAGS)],
    },
    // ---- audit
    parent(
        "audit",
        "Interact with audit devices",
        "audit <subcommand> [options] [args]",
        "This command groups subcommands for interacting with audit devices: enabling, disabling and listing them.",
    ),
    CommandDoc {
        path: "audit enable",
        synopsis: "Enables an audit device",
        usage: "audit enable [options] TYPE [CONFIG K=V...]",
        description: "Enables an audit device of type TYPE at a path named after its type, or at -path. Key=value pairs configure the device.",
        examples: &["audit enable file file_path=/tmp/my-file.txt"],
        groups: &[HTTP, command("Command Options", AUDIT_ENABLE_FLAGS)],
    },
    CommandDoc {
        path: "audit disable",
        synopsis: "Disables an audit device",
        usage: "audit disable [options] PATH",
        description: "Disables the audit device at PATH. The log it wrote is kept.",
        examples: &["audit disable file/"],
        groups: HTTP_ONLY,
    },
    CommandDoc {
        path: "audit list",
        synopsis: "Lists enabled audit devices",
        usage: "audit list [options]",
        description: "Lists the enabled audit devices. Exits 2 when none is enabled.",
        examples: &["audit list", "audit list -detailed"],
        groups: &[HTTP, OUTPUT_LIST],
    },
    // ---- operator
    parent(
        "operator",
        "Perform operator-specific tasks",
        "operator <subcommand> [options] [args]",
        "This command groups subcommands for operators interacting with Arca: initializing, unsealing, sealing, rotating the encryption key, and managing the Raft cluster.",
    ),
    CommandDoc {
        path: "operator init",
        synopsis: "Initializes a server",
        usage: "operator init [options]",
        description: "Initializes an Arca server: the root key is generated and split into unseal key shares, and the initial root token is returned. This only happens once per cluster.",
        examples: &[
            "operator init",
            "operator init -key-shares=1 -key-threshold=1",
        ],
        groups: &[HTTP, OUTPUT, command("Command Options", INIT_FLAGS)],
    },
    CommandDoc {
        path: "operator unseal",
        synopsis: "Unseals the server",
        usage: "operator unseal [options] [KEY]",
        description: "Provides a portion of the root key to unseal the server. Without KEY the key is asked for (hidden); \"-\" reads it from stdin.",
        examples: &["operator unseal", "operator unseal -reset"],
        groups: &[HTTP, OUTPUT, command("Command Options", UNSEAL_FLAGS)],
    },
    CommandDoc {
        path: "operator seal",
        synopsis: "Seals the server",
        usage: "operator seal [options]",
        description: "Seals the server: the in-memory root key is thrown away and requests fail until it is unsealed again.",
        examples: &["operator seal"],
        groups: HTTP_ONLY,
    },
    CommandDoc {
        path: "operator key-status",
        synopsis: "Provides information about the active encryption key",
        usage: "operator key-status [options]",
        description: "Provides information about the active encryption key: its term and installation time.",
        examples: &["operator key-status"],
        groups: HTTP_OUTPUT,
    },
    CommandDoc {
        path: "operator rotate",
        synopsis: "Rotates the underlying encryption key",
        usage: "operator rotate [options]",
        description: "Rotates the underlying encryption key used to protect data written to the storage backend. The new key is added to the keyring; old values stay readable and are re-encrypted on their next write.",
        examples: &["operator rotate"],
        groups: HTTP_OUTPUT,
    },
    CommandDoc {
        path: "operator generate-root",
        synopsis: "Generates a new root token",
        usage: "operator generate-root [options] [KEY]",
        description: "Generates a new root token by combining a quorum of share holders. Start with -init (the server makes an OTP unless -otp gives one; -generate-otp prints one), give unseal keys one at a time (as an argument with -nonce, \"-\" for stdin, or at the prompt), then -decode the encoded token with the OTP.",
        examples: &[
            "operator generate-root -generate-otp",
            "operator generate-root -init -otp=\"...\"",
            "operator generate-root",
            "operator generate-root -decode=\"...\" -otp=\"...\"",
        ],
        groups: &[
            HTTP,
            OUTPUT,
            command("Command Options", GENERATE_ROOT_FLAGS),
        ],
    },
    CommandDoc {
        path: "operator rekey",
        synopsis: "Generates new unseal keys",
        usage: "operator rekey [options] [KEY]",
        description: "Generates a new set of unseal keys, optionally with a new number of key shares and threshold. The server must be unsealed and a quorum of the existing unseal keys must be provided. With -verify the new keys take effect only once a quorum of them is given back.",
        examples: &[
            "operator rekey -init -key-shares=15 -key-threshold=9",
            "operator rekey",
            "operator rekey -verify",
        ],
        groups: &[HTTP, OUTPUT, command("Common Options", REKEY_FLAGS)],
    },
    CommandDoc {
        path: "operator step-down",
        synopsis: "Forces the server to resign active duty",
        usage: "operator step-down [options]",
        description: "Forces the server at the given address to step down from active duty, so that another node of the cluster takes over.",
        examples: &["operator step-down"],
        groups: HTTP_ONLY,
    },
    CommandDoc {
        path: "operator members",
        synopsis: "Returns the list of nodes in the cluster",
        usage: "operator members [options]",
        description: "Lists the active node and the peers it has heard from since it became active: host name (the node id), API and cluster addresses, whether it is active, its version, and when it last answered the active node.",
        examples: &["operator members", "operator members -format=json"],
        groups: HTTP_OUTPUT,
    },
    parent(
        "operator raft",
        "Interact with a Raft storage cluster",
        "operator raft <subcommand> [options] [args]",
        "This command groups subcommands for operators to manage the integrated Raft storage.",
    ),
    CommandDoc {
        path: "operator raft join",
        synopsis: "Joins a node to the Raft cluster",
        usage: "operator raft join [options] LEADER_API_ADDR",
        description: "Joins the node to a Raft cluster whose leader answers at LEADER_API_ADDR. The node must be uninitialized.",
        examples: &["operator raft join http://127.0.0.1:8210"],
        groups: &[HTTP, OUTPUT, command("Command Options", JOIN_FLAGS)],
    },
    CommandDoc {
        path: "operator raft list-peers",
        synopsis: "Returns the Raft peer set",
        usage: "operator raft list-peers [options]",
        description: "Provides the details of all the peers in the Raft cluster: node id, address, leader or follower, voter.",
        examples: &[
            "operator raft list-peers",
            "operator raft list-peers -format=json",
        ],
        groups: HTTP_OUTPUT,
    },
    parent(
        "operator raft snapshot",
        "Restores and saves snapshots from the Raft cluster",
        "operator raft snapshot <subcommand> [options] [args]",
        "This command groups subcommands for operators interacting with the snapshot functionality of the integrated Raft storage: save a backup of the whole storage, restore one, or inspect a saved file.",
    ),
    CommandDoc {
        path: "operator raft snapshot save",
        synopsis: "Saves a snapshot of the current state of the Raft cluster into a file",
        usage: "operator raft snapshot save [options] FILE",
        description: "Saves a snapshot of the whole storage of the Raft cluster into FILE. Values stay encrypted by the barrier; the file holds no plaintext secret. Progress is shown on standard error for large snapshots.",
        examples: &["operator raft snapshot save raft.snap"],
        groups: HTTP_ONLY,
    },
    CommandDoc {
        path: "operator raft snapshot restore",
        synopsis: "Installs the provided snapshot, returning the cluster to the state defined in it",
        usage: "operator raft snapshot restore [options] FILE",
        description: "Installs the snapshot in FILE, replacing the whole storage of the Raft cluster on every node. Without -force the snapshot must come from this cluster (taken under the same keys).",
        examples: &[
            "operator raft snapshot restore raft.snap",
            "operator raft snapshot restore -force raft.snap",
        ],
        groups: &[HTTP, command("Command Options", SNAPSHOT_RESTORE_FLAGS)],
    },
    CommandDoc {
        path: "operator raft snapshot inspect",
        synopsis: "Inspects a snapshot file",
        usage: "operator raft snapshot inspect [options] FILE",
        description: "Checks a saved snapshot file (format version, checksums, every entry) without contacting a server, and prints its header.",
        examples: &[
            "operator raft snapshot inspect raft.snap",
            "operator raft snapshot inspect -format=json raft.snap",
        ],
        groups: &[OUTPUT],
    },
    CommandDoc {
        path: "operator raft remove-peer",
        synopsis: "Removes a node from the Raft cluster",
        usage: "operator raft remove-peer [options] SERVER_ID",
        description: "Removes a node from the Raft cluster. The node is no longer a voter and receives no more log entries.",
        examples: &["operator raft remove-peer node1"],
        groups: HTTP_ONLY,
    },
];

/// The document at `path`. Every command that parses names its own path, so a missing
/// entry is a programming error that the catalog test catches.
pub fn doc(path: &str) -> &'static CommandDoc {
    find(CATALOG, path).unwrap_or_else(|| panic!("no catalog entry for `arca {path}`"))
}

/// Parse a command's arguments against its documented flags.
pub fn parse(path: &str, args: &[String]) -> Result<ParsedArgs, Failure> {
    doc(path).parse(args)
}

/// The usage failure for an unknown or missing subcommand of `parent`: the nearest
/// name, then the parent's help.
pub fn unknown(parent: &str, typed: Option<&str>) -> Failure {
    let help = super::super::help::command_help(CATALOG, doc(parent));
    match typed {
        None => Failure::Usage(help),
        Some(typed) => Failure::Usage(format!(
            "{}\n\n{help}",
            super::super::help::unknown_subcommand(CATALOG, parent, typed)
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::super::help::children;
    use super::*;

    /// `arca ARGS` with an empty environment: (exit code, stdout, stderr).
    fn arca(args: &[&str]) -> (u8, String, String) {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = super::super::super::run(&args, &BTreeMap::new(), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn is_parent(doc: &CommandDoc) -> bool {
        children(CATALOG, doc.path).next().is_some()
    }

    /// The leaf commands that take no flag at all, as in Vault.
    const TAKES_NO_FLAGS: &[&str] = &["version", "print token", "policy fmt"];

    /// Every command issue 7 asks for (besides the tutorial's), by path.
    const EVERYDAY_COMMANDS: &[&str] = &[
        "kv rollback",
        "kv enable-versioning",
        "kv metadata put",
        "kv metadata patch",
        "kv metadata get",
        "kv metadata delete",
        "auth tune",
        "auth move",
        "auth help",
        "secrets move",
        "token capabilities",
        "lease lookup",
        "lease renew",
        "lease revoke",
        "path-help",
        "operator key-status",
        "operator rotate",
        "operator step-down",
        "operator members",
        "policy fmt",
        "version-history",
        "monitor",
        "print token",
    ];

    #[test]
    fn every_everyday_command_is_in_the_tree() {
        for path in EVERYDAY_COMMANDS {
            let doc = find(CATALOG, path).unwrap_or_else(|| panic!("arca {path} is missing"));
            assert!(!is_parent(doc), "arca {path} should be a command");
        }
    }

    #[test]
    fn every_command_is_documented_with_its_flags() {
        for doc in CATALOG {
            assert!(!doc.synopsis.is_empty(), "{}: no synopsis", doc.path);
            assert!(!doc.description.is_empty(), "{}: no description", doc.path);
            assert!(
                doc.usage.starts_with(doc.path),
                "{}: usage {:?} does not name the command",
                doc.path,
                doc.usage
            );
            if !doc.parent().is_empty() {
                assert!(
                    find(CATALOG, doc.parent()).is_some(),
                    "{}: parent not in the catalog",
                    doc.path
                );
            }
            if is_parent(doc) {
                continue;
            }
            assert!(!doc.examples.is_empty(), "{}: no example", doc.path);
            // A leaf's flag list is its groups: only the few commands that take no
            // flag at all (as in Vault) may have none.
            assert!(
                !doc.groups.is_empty() || TAKES_NO_FLAGS.contains(&doc.path),
                "{}: no flag list",
                doc.path
            );
            let mut names = std::collections::BTreeSet::new();
            for group in doc.groups {
                assert!(
                    !group.title.is_empty(),
                    "{}: a group without a title",
                    doc.path
                );
                assert!(
                    !group.flags.is_empty(),
                    "{}: group {:?} lists no flag",
                    doc.path,
                    group.title
                );
                for flag in group.flags {
                    for name in flag.names {
                        assert!(names.insert(*name), "{}: -{name} is listed twice", doc.path);
                    }
                    assert!(
                        !flag.usage.is_empty(),
                        "{}: -{} has no description",
                        doc.path,
                        flag.name()
                    );
                }
            }
        }
    }

    #[test]
    fn dash_h_prints_every_commands_help_with_every_flag() {
        for doc in CATALOG {
            let mut args: Vec<&str> = doc.path.split(' ').collect();
            args.push("-h");
            let (code, out, err) = arca(&args);
            assert_eq!((code, err.as_str()), (0, ""), "arca {} -h", doc.path);
            assert!(
                out.starts_with(&format!("Usage: arca {}\n", doc.usage)),
                "arca {} -h:\n{out}",
                doc.path
            );
            for group in doc.groups {
                assert!(out.contains(&format!("\n{}:\n", group.title)), "{out}");
                for flag in group.flags {
                    assert!(
                        out.contains(&format!("\n  -{}", flag.name())),
                        "arca {} -h lacks -{}",
                        doc.path,
                        flag.name()
                    );
                }
            }
            for child in children(CATALOG, doc.path) {
                assert!(
                    out.contains(&format!("    {}", child.name())),
                    "arca {} -h does not list {}",
                    doc.path,
                    child.name()
                );
            }
        }
    }

    /// The catalog and the dispatch agree: every documented leaf command is reached and
    /// parses with its documented flags (an unknown flag is refused by its parser, before
    /// any request is made).
    #[test]
    fn every_documented_command_is_dispatched_to_its_parser() {
        for doc in CATALOG {
            // `version` takes no flags at all; `server` runs only as its own process.
            if is_parent(doc) || matches!(doc.path, "version" | "server") {
                continue;
            }
            let mut args: Vec<&str> = doc.path.split(' ').collect();
            args.push("-not-a-flag");
            let (code, out, err) = arca(&args);
            assert_eq!(
                (code, out.as_str(), err.as_str()),
                (1, "", "flag provided but not defined: -not-a-flag\n"),
                "arca {}",
                doc.path
            );
        }
    }

    #[test]
    fn typos_suggest_the_nearest_command() {
        let (code, _, err) = arca(&["wirte", "secret/x", "a=b"]);
        assert_eq!(code, 127);
        assert!(
            err.starts_with(
                "Unknown command: wirte\n\nDid you mean \"write\"?\n\nUsage: arca <command> [args]"
            ),
            "{err}"
        );
        for doc in CATALOG.iter().filter(|doc| is_parent(doc)) {
            let first = children(CATALOG, doc.path).next().unwrap();
            // One letter doubled: the nearest name is the one meant.
            let typo = format!("{}{}", &first.name()[..1], first.name());
            let mut args: Vec<&str> = doc.path.split(' ').collect();
            args.push(&typo);
            let (code, out, err) = arca(&args);
            assert_eq!((code, out.as_str()), (1, ""), "arca {} {typo}", doc.path);
            assert!(
                err.contains(&format!("Did you mean \"{}\"?", first.name())),
                "arca {} {typo}: {err}",
                doc.path
            );
            // No subcommand at all: the parent's help, as a usage error.
            let bare: Vec<&str> = doc.path.split(' ').collect();
            let (code, _, err) = arca(&bare);
            assert_eq!(code, 1, "arca {}", doc.path);
            assert!(
                err.starts_with(&format!("Usage: arca {}", doc.usage)),
                "{err}"
            );
        }
    }

    #[test]
    fn the_main_help_lists_every_top_level_command() {
        let (code, out, _) = arca(&["-h"]);
        assert_eq!(code, 0);
        assert!(out.starts_with("Usage: arca <command> [args]\n\nCommon commands:\n"));
        for doc in children(CATALOG, "") {
            assert!(out.contains(&format!("    {}", doc.path)), "{}", doc.path);
        }
        let (code, _, err) = arca(&[]);
        assert_eq!(code, 127);
        assert!(err.starts_with("Usage: arca <command> [args]"));
    }
}
