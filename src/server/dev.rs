//! `arca server -dev`: one in-memory node, initialized and unsealed, with `secret/`
//! mounted as KV version 2, as Vault's dev mode.

#[cfg(not(madsim))]
use super::{Node, NodeConfig, ServerArgs};

/// Vault's dev listen address.
pub const DEV_LISTEN_ADDRESS: &str = "127.0.0.1:8200";

#[cfg(not(madsim))]
pub async fn run_dev(args: &ServerArgs) -> Result<(), String> {
    let logging = std::sync::Arc::new(super::init_logging(args, None)?);
    // From here a SIGHUP is queued for the reload handler instead of ending the process.
    let hangups = super::hangup::listen()?;
    let listen = args
        .dev_listen_address
        .clone()
        .unwrap_or_else(|| DEV_LISTEN_ADDRESS.to_string());
    let api_listen: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| format!("Error parsing -dev-listen-address {listen:?}: expected HOST:PORT"))?;
    let dev_tls = if args.dev_tls {
        Some(super::dev_tls::generate(
            args.dev_tls_cert_dir.as_deref(),
            api_listen.ip(),
        )?)
    } else {
        None
    };
    let result = serve_dev(args, api_listen, dev_tls.as_ref(), (hangups, logging)).await;
    // The generated files go whether the node ran or failed to start.
    if let Some(files) = &dev_tls {
        super::dev_tls::remove(files);
    }
    result
}

/// The dev node itself, over TLS when `dev_tls` holds its files, until a signal.
#[cfg(not(madsim))]
async fn serve_dev(
    args: &ServerArgs,
    api_listen: std::net::SocketAddr,
    dev_tls: Option<&super::dev_tls::DevTlsFiles>,
    (hangups, logging): (
        tokio::signal::unix::Signal,
        std::sync::Arc<super::logging::Logging>,
    ),
) -> Result<(), String> {
    use base64::Engine;
    let cluster_listen =
        std::net::SocketAddr::new(api_listen.ip(), api_listen.port().wrapping_add(1));
    let env = crate::env::Env::in_memory(crate::env::SimDisk::new(0));
    let api_tls = match dev_tls {
        Some(files) => Some((
            crate::http::tls::ServerTls::new(
                super::tls_files::load_listener(&files.listener)
                    .map_err(|error| format!("Error loading the dev TLS certificate: {error}"))?,
            ),
            files.listener.clone(),
        )),
        None => None,
    };
    let scheme = if dev_tls.is_some() { "https" } else { "http" };
    let config = NodeConfig {
        node_id: "dev-node".into(),
        api_listen,
        cluster_listen,
        api_addr: format!("{scheme}://{api_listen}"),
        cluster_addr: format!("https://{cluster_listen}"),
        cluster_name: None,
        retry_join: Vec::new(),
        api_tls: api_tls.as_ref().map(|(tls, _)| tls.clone()),
        raft: Default::default(),
    };
    super::print_configuration(&config, "inmem");
    // The API is served only once the node is initialized, unsealed and has `secret/`:
    // a script that waits for the port and then calls the API must never find the dev
    // server sealed.
    let mut node = Node::start_without_api(
        env,
        config.clone(),
        std::sync::Arc::new(crate::env::OsLogFiles),
    )
    .await
    .map_err(|error| format!("Error starting the dev node: {error}"))?;
    let (unseal_key, root_token) = node
        .initialize_dev(args.dev_root_token_id.clone())
        .await
        .map_err(|error| format!("Error initializing the dev node: {error}"))?;
    node.serve_api()
        .await
        .map_err(|error| format!("Error starting the dev node: {error}"))?;
    super::hangup::spawn(
        hangups,
        super::hangup::Reloadable {
            config_path: None,
            logging,
            tls: api_tls,
        },
        node.core().clone(),
    );
    let unseal_key = base64::engine::general_purpose::STANDARD.encode(unseal_key);
    // Vault prints the CA's path right under the address, so both lines can be pasted.
    let ca_line = match dev_tls {
        Some(files) => format!("    $ export VAULT_CACERT='{}'\n", files.ca_file.display()),
        None => String::new(),
    };
    println!(
        "WARNING! dev mode is enabled! In this mode, Arca runs entirely in-memory\n\
         and starts unsealed with a single unseal key. The root token is already\n\
         authenticated to the CLI, so you can immediately begin using Arca.\n\n\
         You may need to set the following environment variables:\n\n    \
         $ export VAULT_ADDR='{}'\n{ca_line}\n\
         The unseal key and root token are displayed below in case you want to\n\
         seal/unseal Arca or re-authenticate.\n\n\
         Unseal Key: {unseal_key}\n\
         Root Token: {root_token}\n\n\
         Development mode should NOT be used in production installations!\n",
        config.api_addr
    );
    super::serve_until_stopped(node).await
}
