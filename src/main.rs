//! The `confab` command line: parses arguments, loads the configuration and
//! dispatches to the library. No logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use confab::admin::Request;
use confab::commands;
use confab::config::{Config, ConfigSource, LogFormat, Overrides};

/// mimalloc instead of glibc's malloc. Messages cross threads (parsed on a
/// runtime thread, stored by the writer thread, broadcast and freed on the
/// runtime again), and glibc serializes such frees on the owning arena's lock:
/// malloc and free took about a fifth of the writer thread. See BENCHMARKS.md
/// (durable publish) for the measured difference.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "confab",
    version,
    about = "Self-hosted team chat server in one executable"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone)]
struct GlobalArgs {
    /// Configuration file (default: ./config.toml if present)
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (default: ./data)
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Address to listen on (default: 127.0.0.1:4000)
    #[arg(long, global = true, value_name = "ADDR")]
    listen: Option<String>,
    /// Log format: text or json
    #[arg(long, global = true, value_name = "FORMAT", value_parser = parse_log_format)]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. info or confab=debug
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default)
    Serve,
    /// Manage accounts (live through the admin socket, or offline)
    #[command(subcommand)]
    User(UserCommand),
    /// Manage rooms (live through the admin socket, or offline)
    #[command(subcommand)]
    Room(RoomCommand),
    /// Write a JSON Lines backup of the store (live or offline)
    Export {
        /// Output file (default: stdout)
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Load a backup into an empty data directory (or empty PostgreSQL database)
    Import {
        /// The export file
        file: PathBuf,
    },
    /// Manage bot accounts (live through the admin socket, or offline)
    #[command(subcommand)]
    Bot(BotCommand),
    /// Manage a room's incoming webhooks (live or offline)
    #[command(subcommand)]
    Hook(HookCommand),
    /// Rebuild the search index from the store (live or offline)
    Reindex,
    /// Print a fresh random secret for jwt_secret
    GenSecret,
    /// Apply the PostgreSQL schema migrations (with database_url set)
    Migrate,
    /// Exit 0 if the server's /healthz answers 200
    Healthcheck {
        /// URL of the server (default: from listen)
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; prints a generated password unless --password-stdin
    Add {
        name: String,
        #[arg(long)]
        admin: bool,
        #[arg(long, value_name = "E")]
        email: Option<String>,
        #[arg(long, value_name = "D")]
        display_name: Option<String>,
        /// Read the password from the first line of stdin
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (revokes the user's tokens)
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users
    List,
    /// Disable a user (their tokens stop working)
    Disable { name: String },
    /// Enable a user
    Enable { name: String },
}

#[derive(Subcommand)]
enum RoomCommand {
    /// Create a room
    Add {
        name: String,
        /// Only members may join
        #[arg(long)]
        private: bool,
        #[arg(long, value_name = "D")]
        description: Option<String>,
    },
    /// List rooms
    List,
}

#[derive(Subcommand)]
enum BotCommand {
    /// Create a bot; prints its API key and signing secret once
    Add {
        name: String,
        #[arg(long, value_name = "D")]
        display_name: Option<String>,
        /// Outgoing webhook URL (http:// or https://)
        #[arg(long, value_name = "URL")]
        webhook: Option<String>,
        /// Send every message of the bot's rooms, not only mentions
        #[arg(long)]
        all_messages: bool,
    },
    /// List bots
    List,
    /// Rotate a bot's key and signing secret (the old key is refused)
    Key { name: String },
    /// Delete a bot (its key is refused, its user kept disabled)
    Delete { name: String },
}

#[derive(Subcommand)]
enum HookCommand {
    /// Make an incoming webhook; prints its secret URL once
    Add {
        room: String,
        /// Post as this bot (default: the room's owner)
        #[arg(long = "as", value_name = "BOT")]
        as_bot: Option<String>,
    },
    /// List a room's webhooks
    List { room: String },
    /// Revoke a webhook
    Delete { room: String, id: String },
}

fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    match value {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("{other:?} is not a log format (text or json)")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let source = match &cli.global.config {
        Some(path) => ConfigSource::Explicit(path.clone()),
        None => ConfigSource::DefaultIfPresent,
    };
    let overrides = Overrides {
        listen: cli.global.listen.clone(),
        data_dir: cli.global.data.clone(),
        log_format: cli.global.log_format,
        log_level: cli.global.log_level.clone(),
    };
    let cfg = match Config::load(&source, std::env::vars(), &overrides) {
        Ok(cfg) => cfg,
        Err(e) => return fail(&e.to_string()),
    };
    let command = cli.command.unwrap_or(Command::Serve);
    if matches!(command, Command::Serve) {
        confab::logging::init(&cfg.log_level, cfg.log_format);
        for key in confab::config::unknown_env_keys(std::env::vars()) {
            tracing::warn!(variable = %key, "unknown CONFAB_ environment variable ignored");
        }
    }
    // Store reads and password hashing run on the blocking pool, sized
    // together with the hashing semaphore (see `pool_sizes`).
    let pool = confab::pool_sizes::PoolSizes::of_this_machine();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(pool.blocking_threads)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let result = runtime.block_on(async {
        match command {
            Command::Serve => confab::run(cfg).await,
            Command::GenSecret => commands::gen_secret(),
            Command::Reindex => commands::reindex(&cfg).await,
            Command::Bot(bot) => commands::run(&cfg, bot_request(bot)).await,
            Command::Hook(hook) => commands::run(&cfg, hook_request(hook)).await,
            Command::Migrate => commands::migrate(&cfg).await,
            Command::Export { out } => commands::export(&cfg, out.as_deref()).await,
            Command::Import { file } => commands::import(&cfg, &file).await,
            Command::Healthcheck { url } => commands::healthcheck(&cfg, url.as_deref()).await,
            Command::Room(RoomCommand::Add {
                name,
                private,
                description,
            }) => commands::room_add(&cfg, &name, private, description).await,
            Command::Room(RoomCommand::List) => commands::room_list(&cfg).await,
            Command::User(user) => match user {
                UserCommand::Add {
                    name,
                    admin,
                    email,
                    display_name,
                    password_stdin,
                } => {
                    commands::user_add(
                        &cfg,
                        commands::UserAdd {
                            username: name,
                            admin,
                            email,
                            display_name,
                            password_stdin,
                        },
                    )
                    .await
                }
                UserCommand::Passwd {
                    name,
                    password_stdin,
                } => commands::user_passwd(&cfg, &name, password_stdin).await,
                UserCommand::List => commands::user_list(&cfg).await,
                UserCommand::Disable { name } => {
                    commands::user_set_disabled(&cfg, &name, true).await
                }
                UserCommand::Enable { name } => {
                    commands::user_set_disabled(&cfg, &name, false).await
                }
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => fail(&line),
    }
}

fn bot_request(command: BotCommand) -> Request {
    match command {
        BotCommand::Add {
            name,
            display_name,
            webhook,
            all_messages,
        } => Request::BotAdd {
            name,
            display_name,
            webhook_url: webhook,
            all_messages,
        },
        BotCommand::List => Request::BotList,
        BotCommand::Key { name } => Request::BotKey { name },
        BotCommand::Delete { name } => Request::BotDelete { name },
    }
}

fn hook_request(command: HookCommand) -> Request {
    match command {
        HookCommand::Add { room, as_bot } => Request::HookAdd { room, as_bot },
        HookCommand::List { room } => Request::HookList { room },
        HookCommand::Delete { room, id } => Request::HookDelete { room, id },
    }
}

fn fail(line: &str) -> ExitCode {
    eprintln!("confab: {line}");
    ExitCode::FAILURE
}
