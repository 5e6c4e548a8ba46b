use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use proptest::prelude::*;

use super::*;
use crate::http::tls_policy::{Tls12CipherSuite, TlsPolicy, TlsVersion};

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn error_text(text: &str) -> String {
    parse(text, "config.hcl", &no_env())
        .expect_err("the configuration should be rejected")
        .to_string()
}

/// The primary's file from the performance replication tutorial, as the heredoc writes it.
const TUTORIAL_PRIMARY: &str = r#"ui = true
listener "tcp" {
  tls_disable = 1
  address = "[::]:8200"
  cluster_address = "[::]:8201"
}
storage "raft" {
  path = "/vault/file"
}
"#;

#[test]
fn tutorial_file_with_the_docker_environment() {
    // The tutorial starts the primary with these variables next to its file.
    let environment = env(&[
        ("VAULT_ADDR", "http://localhost:8200"),
        ("VAULT_CLUSTER_ADDR", "http://cluster-pri:8201"),
        ("VAULT_API_ADDR", "http://cluster-pri:8200"),
        ("VAULT_RAFT_NODE_ID", "cluster-pri"),
    ]);
    let config = parse(TUTORIAL_PRIMARY, "vault-server.hcl", &environment).unwrap();

    assert!(config.ui);
    assert_eq!(
        config.listeners,
        vec![TcpListenerConfig {
            address: "[::]:8200".parse().unwrap(),
            cluster_address: "[::]:8201".parse().unwrap(),
            tls: ListenerTls::Disabled,
            unauthenticated_metrics_access: false,
        }]
    );
    assert_eq!(
        config.storage,
        StorageConfig::Raft(RaftStorageConfig {
            path: PathBuf::from("/vault/file"),
            node_id: Some("cluster-pri".to_string()),
            retry_join: vec![],
            snapshot_threshold: 8192,
            trailing_logs: 10_000,
            clock_drift_ms: 100,
        })
    );
    assert_eq!(config.api_addr, "http://cluster-pri:8200");
    // Vault forces https on the cluster address: the cluster channel is always TLS.
    assert_eq!(config.cluster_addr, "https://cluster-pri:8201");
}

#[test]
fn the_tutorial_one_line_form_parses_too() {
    // The tutorial page flattens the heredoc onto one line. Vault's HCL 1 reads it as
    // the file it came from, and so does Arca.
    let flattened = r#"ui = true listener "tcp" { tls_disable = 1 address = "[::]:8200" cluster_address = "[::]:8201" } storage "raft" { path = "/vault/file" }"#;
    assert_eq!(
        parse(flattened, "vault-server.hcl", &no_env()).unwrap(),
        parse(TUTORIAL_PRIMARY, "vault-server.hcl", &no_env()).unwrap()
    );
}

#[test]
fn one_line_blocks_with_several_attributes_parse_as_in_vault() {
    let one_line = "listener \"tcp\" { address = \"127.0.0.1:8200\" tls_disable = 1 }\n\
                    storage \"raft\" { path = \"/data\" node_id = \"n1\" retry_join { leader_api_addr = \"http://127.0.0.1:8210\" } }\n";
    let written_out = "listener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n  tls_disable = 1\n}\n\
                       storage \"raft\" {\n  path = \"/data\"\n  node_id = \"n1\"\n  retry_join {\n    leader_api_addr = \"http://127.0.0.1:8210\"\n  }\n}\n";
    let expected = parse(written_out, "config.hcl", &no_env()).unwrap();
    assert_eq!(parse(one_line, "config.hcl", &no_env()).unwrap(), expected);
    // HCL 1 also takes commas between a block's attributes.
    let commas = one_line.replace("\" tls_disable", "\", tls_disable");
    assert_eq!(parse(&commas, "config.hcl", &no_env()).unwrap(), expected);

    // Errors still name the line the operator wrote.
    let misspelled = "listener \"tcp\" { address = \"127.0.0.1:8200\" tls_disable = 1 }\n\
                      storage \"raft\" { pth = \"/data\" node_id = \"n1\" }\n";
    assert_eq!(
        error_text(misspelled),
        "config.hcl:2: storage \"raft\": unknown key \"pth\""
    );
    let unclosed = "ui = true\nlistener \"tcp\" { address = \"127.0.0.1:8200\" tls_disable = 1\n";
    assert!(
        error_text(unclosed).starts_with("config.hcl:"),
        "{}",
        error_text(unclosed)
    );
}

#[test]
fn arca_variables_win_over_vault_ones() {
    let environment = env(&[
        ("VAULT_API_ADDR", "http://vault-name:8200"),
        ("ARCA_API_ADDR", "http://arca-name:8200"),
        ("VAULT_RAFT_NODE_ID", "vault-node"),
        ("ARCA_RAFT_NODE_ID", "arca-node"),
        ("VAULT_CLUSTER_ADDR", "https://vault-name:8201"),
        ("ARCA_CLUSTER_ADDR", "http://arca-name:9201"),
    ]);
    let config = parse(TUTORIAL_PRIMARY, "c.hcl", &environment).unwrap();
    assert_eq!(config.api_addr, "http://arca-name:8200");
    assert_eq!(config.cluster_addr, "https://arca-name:9201");
    let StorageConfig::Raft(raft) = config.storage else {
        panic!("raft storage expected");
    };
    assert_eq!(raft.node_id.as_deref(), Some("arca-node"));
}

#[test]
fn the_environment_wins_over_the_file_and_empty_variables_are_ignored() {
    let text = format!("api_addr = \"http://from-file:8200\"\n{TUTORIAL_PRIMARY}");
    let from_env = parse(
        &text,
        "c.hcl",
        &env(&[("VAULT_API_ADDR", "http://from-env:8200")]),
    );
    assert_eq!(from_env.unwrap().api_addr, "http://from-env:8200");
    let empty = parse(&text, "c.hcl", &env(&[("ARCA_API_ADDR", "")]));
    assert_eq!(empty.unwrap().api_addr, "http://from-file:8200");
}

#[test]
fn defaults_follow_vault() {
    let text = "listener \"tcp\" {\n  tls_disable = \"true\"\n}\nstorage \"raft\" {\n  path = \"/data\"\n}\n";
    let config = parse(text, "c.hcl", &no_env()).unwrap();
    let listener = &config.listeners[0];
    assert_eq!(
        listener.address,
        "127.0.0.1:8200".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        listener.cluster_address,
        "127.0.0.1:8201".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.api_addr, "http://127.0.0.1:8200");
    assert_eq!(config.cluster_addr, "https://127.0.0.1:8201");
    assert!(!config.ui && !config.disable_mlock && !config.disable_cache);
    assert_eq!(config.log_level, None);
}

#[test]
fn api_addr_from_a_wildcard_listener_uses_loopback_and_cluster_addr_adds_one() {
    let text = "listener \"tcp\" {\n  address = \"[::]:8220\"\n  tls_disable = true\n}\nstorage \"inmem\" {}\n";
    let config = parse(text, "c.hcl", &no_env()).unwrap();
    assert_eq!(config.api_addr, "http://[::1]:8220");
    assert_eq!(config.cluster_addr, "https://[::1]:8221");
    assert_eq!(config.storage, StorageConfig::Inmem);
}

#[test]
fn every_documented_key() {
    let text = r#"
api_addr = "https://node-1.example.com:8200"
cluster_addr = "https://node-1.example.com:8201"
cluster_name = "east"
ui = false
log_level = "Debug"
log_format = "json"
telemetry {
  prometheus_retention_time = "30s"
  disable_hostname = true
  statsd_address = "statsd:8125"
}
disable_mlock = true
disable_cache = "1"
listener "tcp" {
  address = "0.0.0.0:8200"
  tls_disable = 0
  tls_cert_file = "/etc/arca/cert.pem"
  tls_key_file = "/etc/arca/key.pem"
}
listener "tcp" {
  address = "127.0.0.1:9200"
  cluster_address = "127.0.0.1:9999"
  tls_disable = "false"
  tls_cert_file = "c"
  tls_key_file = "k"
  telemetry {
    unauthenticated_metrics_access = true
  }
}
storage "raft" {
  path = "/var/lib/arca"
  node_id = "node-1"
  retry_join {
    leader_api_addr = "https://node-2.example.com:8200"
  }
  retry_join {
    leader_api_addr = "https://node-3.example.com:8200"
  }
}
"#;
    let config = parse(text, "c.hcl", &no_env()).unwrap();
    assert_eq!(config.cluster_name.as_deref(), Some("east"));
    assert_eq!(config.log_level.as_deref(), Some("debug"));
    assert_eq!(config.log_format, Some(super::LogFormat::Json));
    assert_eq!(
        config.telemetry,
        super::TelemetryConfig {
            prometheus_retention: std::time::Duration::from_secs(30),
            disable_hostname: true,
        }
    );
    assert!(
        config
            .ignored
            .contains(&"telemetry.statsd_address".to_string())
    );
    assert!(config.disable_mlock && config.disable_cache && !config.ui);
    assert_eq!(config.listeners.len(), 2);
    assert!(!config.listeners[0].unauthenticated_metrics_access);
    assert!(config.listeners[1].unauthenticated_metrics_access);
    assert_eq!(
        config.listeners[0].tls,
        ListenerTls::Enabled(ListenerTlsFiles {
            cert_file: "/etc/arca/cert.pem".into(),
            key_file: "/etc/arca/key.pem".into(),
            policy: TlsPolicy::default(),
            client_ca_file: None,
            require_client_cert: false,
        })
    );
    assert_eq!(config.listeners[0].cluster_address.port(), 8201);
    assert_eq!(config.listeners[1].cluster_address.port(), 9999);
    let StorageConfig::Raft(raft) = config.storage else {
        panic!("raft storage expected");
    };
    let leaders: Vec<_> = raft
        .retry_join
        .iter()
        .map(|join| join.leader_api_addr.as_str())
        .collect();
    assert_eq!(
        leaders,
        [
            "https://node-2.example.com:8200",
            "https://node-3.example.com:8200"
        ]
    );
}

#[test]
fn errors_name_the_line_and_the_key() {
    let misspelled =
        "listener \"tcp\" {\n  tls_disable = 1\n}\nstorage \"raft\" {\n  pth = \"/data\"\n}\n";
    assert_eq!(
        error_text(misspelled),
        "config.hcl:5: storage \"raft\": unknown key \"pth\""
    );

    let wrong_type = "listener \"tcp\" {\n  tls_disable = 1\n  address = 8200\n}\n";
    assert_eq!(
        error_text(wrong_type),
        "config.hcl:3: listener \"tcp\": \"address\": expected a string, got a number"
    );

    let bad_bool = "ui = \"maybe\"\n";
    assert_eq!(
        error_text(bad_bool),
        "config.hcl:1: \"ui\": expected a boolean, got \"maybe\""
    );

    let auto_unseal = "\n\nseal \"awskms\" {}\n";
    assert_eq!(
        error_text(auto_unseal),
        "config.hcl:3: seal blocks (auto-unseal) are not supported: Arca unseals with Shamir shares"
    );

    let unknown_top = "\n\nmeteor \"x\" {}\n";
    assert_eq!(
        error_text(unknown_top),
        "config.hcl:3: unknown block \"meteor\""
    );

    let bad_address = "listener \"tcp\" {\n  address = \"nowhere\"\n  tls_disable = 1\n}\n";
    assert!(
        error_text(bad_address)
            .starts_with("config.hcl:2: listener \"tcp\": \"address\": invalid address")
    );

    let duplicate = "ui = true\nui = false\n";
    let duplicate_error = error_text(duplicate);
    assert!(
        duplicate_error.starts_with("config.hcl:2: syntax error:")
            && duplicate_error.contains("redefined")
    );

    let syntax = "listener \"tcp\" {\n  address = \n";
    assert!(error_text(syntax).starts_with("config.hcl:"));
}

#[test]
fn missing_pieces_are_errors() {
    assert_eq!(
        error_text("storage \"inmem\" {}\n"),
        "config.hcl: no listener \"tcp\" block: at least one listener is required"
    );
    assert_eq!(
        error_text("listener \"tcp\" {\n  tls_disable = 1\n}\n"),
        "config.hcl: no storage block: a storage backend must be specified"
    );
    assert_eq!(
        error_text("listener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n}\n"),
        "config.hcl:1: listener \"tcp\": tls_cert_file and tls_key_file must be set unless tls_disable = true"
    );
    assert!(
        error_text("listener \"tcp\" { tls_disable = 1 }\nstorage \"raft\" {}\n")
            .contains("\"path\" is required")
    );
    assert!(error_text("storage \"consul\" {}\n").contains("unsupported storage type"));
    assert!(error_text("log_level = \"verbose\"\n").contains("unknown log level \"verbose\""));
    assert!(
        error_text("telemetry {\n  prometheus_retention_time = \"soon\"\n}\n")
            .contains("prometheus_retention_time")
    );
    assert!(error_text("telemetry {\n  statsd = 1\n}\n").contains("unknown key \"statsd\""));
    assert!(error_text("log_format = \"logfmt\"\n").contains("unknown log format \"logfmt\""));
    let retry_join = "listener \"tcp\" {\n  tls_disable = 1\n}\nstorage \"raft\" {\n  path = \"/d\"\n  retry_join {\n    leader_ca_crt = \"x\"\n  }\n}\n";
    assert_eq!(
        error_text(retry_join),
        "config.hcl:7: storage \"raft\": retry_join: unknown key \"leader_ca_crt\""
    );
}

#[test]
fn bad_environment_values_are_errors() {
    let error = parse(
        TUTORIAL_PRIMARY,
        "c.hcl",
        &env(&[("VAULT_API_ADDR", "cluster-pri:8200")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("c.hcl: VAULT_API_ADDR: invalid address"),
        "{error}"
    );
}

#[test]
fn interpolation_is_rejected() {
    let text = "cluster_name = \"${var.name}\"\n";
    assert!(error_text(text).contains("interpolation is not supported"));
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*") {
        let _ = parse(&text, "fuzz.hcl", &BTreeMap::new());
    }

    #[test]
    fn hcl_like_text_never_panics(
        text in "(listener|storage|ui|api_addr|\"tcp\"|\"raft\"|\\{|\\}|=|\"[\\[\\]:0-9a-z]{0,12}\"|[0-9]{1,6}|\n| ){0,40}"
    ) {
        let _ = parse(&text, "fuzz.hcl", &BTreeMap::new());
    }
}

#[test]
fn vault_settings_arca_does_not_act_on_are_accepted_and_named() {
    let text = "default_lease_ttl = \"768h\"\ntelemetry {\n  disable_hostname = true\n  usage_gauge_period = \"5m\"\n}\nservice_registration \"consul\" {}\nlistener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n  tls_disable = 1\n}\nstorage \"raft\" {\n  path = \"/tmp/x\"\n}\n";
    let config = parse(text, "config.hcl", &BTreeMap::new()).unwrap();
    assert_eq!(
        config.ignored,
        vec![
            "default_lease_ttl".to_string(),
            "telemetry.usage_gauge_period".to_string(),
            "service_registration".to_string()
        ]
    );
}

#[test]
fn raft_log_settings_and_the_replication_buffer_follow_vault_and_are_bounded() {
    let defaults = parse(TUTORIAL_PRIMARY, "config.hcl", &env(&[])).unwrap();
    assert_eq!(defaults.replication.logshipper_buffer_length, 16_384);

    let text = "listener \"tcp\" {\n  tls_disable = 1\n}\nstorage \"raft\" {\n  path = \"/d\"\n  snapshot_threshold = 100\n  trailing_logs = \"50\"\n}\nreplication {\n  logshipper_buffer_length = 512\n}\n";
    let config = parse(text, "config.hcl", &env(&[])).unwrap();
    let StorageConfig::Raft(raft) = config.storage else {
        panic!("raft storage expected");
    };
    assert_eq!((raft.snapshot_threshold, raft.trailing_logs), (100, 50));
    assert_eq!(config.replication.logshipper_buffer_length, 512);

    let zero = text.replace("snapshot_threshold = 100", "snapshot_threshold = 0");
    assert_eq!(
        parse(&zero, "config.hcl", &env(&[]))
            .unwrap_err()
            .to_string(),
        "config.hcl:6: storage \"raft\": \"snapshot_threshold\": expected a whole number from 1 to 10000000"
    );
    let drift = text.replace(
        "trailing_logs",
        "leader_lease_clock_drift_ms = 250\n  trailing_logs",
    );
    let StorageConfig::Raft(raft) = parse(&drift, "config.hcl", &env(&[])).unwrap().storage else {
        panic!("raft storage expected");
    };
    assert_eq!(raft.clock_drift_ms, 250);
    let too_much = text.replace(
        "trailing_logs",
        "leader_lease_clock_drift_ms = 401\n  trailing_logs",
    );
    assert!(parse(&too_much, "config.hcl", &env(&[])).is_err());
    let huge = text.replace("= 512", "= 99999999999");
    assert!(
        parse(&huge, "config.hcl", &env(&[]))
            .unwrap_err()
            .to_string()
            .contains("replication: \"logshipper_buffer_length\": expected a whole number"),
    );
    let unknown = text.replace("logshipper_buffer_length", "buffer_length");
    assert!(parse(&unknown, "config.hcl", &env(&[])).is_err());
}

#[test]
fn tls_listener_and_join_settings_are_read_as_vault_names_them() {
    let text = r#"
listener "tcp" {
  address = "127.0.0.1:8200"
  tls_cert_file = "/tls/chain.pem"
  tls_key_file = "/tls/key.pem"
  tls_min_version = "tls13"
  tls_client_ca_file = "/tls/clients.pem"
  tls_require_and_verify_client_cert = "true"
}
storage "raft" {
  path = "/d"
  retry_join {
    leader_api_addr = "https://10.0.0.2:8200"
    leader_ca_cert_file = "/tls/ca.pem"
    leader_client_cert_file = "/tls/node.pem"
    leader_client_key_file = "/tls/node-key.pem"
    leader_tls_servername = "arca.internal"
  }
}
"#;
    let config = parse(text, "c.hcl", &no_env()).unwrap();
    assert_eq!(
        config.listeners[0].tls,
        ListenerTls::Enabled(ListenerTlsFiles {
            cert_file: "/tls/chain.pem".into(),
            key_file: "/tls/key.pem".into(),
            policy: TlsPolicy::new(TlsVersion::Tls13, TlsVersion::Tls13, Vec::new()).unwrap(),
            client_ca_file: Some("/tls/clients.pem".into()),
            require_client_cert: true,
        })
    );
    assert_eq!(config.api_addr, "https://127.0.0.1:8200");
    let StorageConfig::Raft(raft) = config.storage else {
        panic!("raft storage expected");
    };
    let join = &raft.retry_join[0];
    assert_eq!(
        join.leader_ca_cert,
        Some(PemSource::File("/tls/ca.pem".into()))
    );
    assert_eq!(
        join.leader_client_key,
        Some(PemSource::File("/tls/node-key.pem".into()))
    );
    assert_eq!(join.leader_tls_servername.as_deref(), Some("arca.internal"));
}

#[test]
fn tls_max_version_and_cipher_suites_make_the_listener_policy() {
    let text = "listener \"tcp\" {\n  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n  tls_max_version = \"tls12\"\n  tls_cipher_suites = \"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305\"\n}\nstorage \"inmem\" {}\n";
    let config = parse(text, "c.hcl", &no_env()).unwrap();
    let ListenerTls::Enabled(files) = &config.listeners[0].tls else {
        panic!("a TLS listener expected");
    };
    assert_eq!(
        files.policy,
        TlsPolicy::new(
            TlsVersion::Tls12,
            TlsVersion::Tls12,
            vec![
                Tls12CipherSuite::EcdheEcdsaWithAes256GcmSha384,
                Tls12CipherSuite::EcdheEcdsaWithChacha20Poly1305Sha256,
            ]
        )
        .unwrap()
    );
}

#[test]
fn unsafe_or_incomplete_tls_settings_are_refused_with_the_key_named() {
    let listener = |extra: &str| {
        format!(
            "listener \"tcp\" {{\n  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n{extra}}}\nstorage \"inmem\" {{}}\n"
        )
    };
    let error = error_text(&listener("  tls_min_version = \"tls11\"\n"));
    assert!(
        error.starts_with(
            "config.hcl:4: listener \"tcp\": \"tls_min_version\": \"tls11\" is not supported"
        ),
        "{error}"
    );
    let error = error_text(&listener("  tls_min_version = \"ssl3\"\n"));
    assert!(error.contains("invalid TLS version \"ssl3\""), "{error}");
    let error = error_text(&listener("  tls_max_version = \"tls11\"\n"));
    assert!(
        error.starts_with(
            "config.hcl:4: listener \"tcp\": \"tls_max_version\": \"tls11\" is not supported"
        ),
        "{error}"
    );
    let error = error_text(&listener(
        "  tls_min_version = \"tls13\"\n  tls_max_version = \"tls12\"\n",
    ));
    assert!(
        error.starts_with(
            "config.hcl:5: listener \"tcp\": tls_min_version \"tls13\" is newer than tls_max_version \"tls12\""
        ),
        "{error}"
    );
    let error = error_text(&listener(
        "  tls_cipher_suites = \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_NO_SUCH_SUITE\"\n",
    ));
    assert!(
        error.starts_with(
            "config.hcl:4: listener \"tcp\": \"tls_cipher_suites\": unknown cipher suite \"TLS_NO_SUCH_SUITE\""
        ),
        "{error}"
    );
    let error = error_text(&listener(
        "  tls_min_version = \"tls13\"\n  tls_cipher_suites = \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"\n",
    ));
    assert!(
        error.starts_with("config.hcl:5: listener \"tcp\": tls_cipher_suites lists TLS 1.2 suites, but the listener speaks only TLS 1.3"),
        "{error}"
    );
    let error = error_text(&listener("  tls_require_and_verify_client_cert = true\n"));
    assert!(
        error.contains("tls_require_and_verify_client_cert needs tls_client_ca_file"),
        "{error}"
    );
    let half_pair = "listener \"tcp\" {\n  tls_disable = 1\n}\nstorage \"raft\" {\n  path = \"/d\"\n  retry_join {\n    leader_api_addr = \"https://a:8200\"\n    leader_client_cert_file = \"c\"\n  }\n}\n";
    assert!(
        error_text(half_pair).contains("must be set together"),
        "{}",
        error_text(half_pair)
    );
}
