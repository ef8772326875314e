//! The command line: `authd [serve]`, `authd user ...`, `authd session ...`,
//! `authd cert` (SPEC §1, §2).
//!
//! Every flag also reads an `AUTHD_*` environment variable. A bad flag or
//! value is one line on stderr that names the flag, and exit status 2.
//! Administrative commands open the database directly; when a running
//! server holds it, they go through that server's admin API instead.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use hyper::Method;
use serde_json::json;

use crate::admin::{AddUser, SessionView, TokenView, UserView};
use crate::auth::{Auth, AuthSettings};
use crate::client::AdminClient;
use crate::clock::SystemClock;
use crate::config::{
    parse_base_url, parse_cookie_prefix, parse_cors_origin, Config, DurationParser, Timeouts,
    MAX_REMEMBER_ME_AGE,
};
use crate::datadir::DataDir;
use crate::http::proxy::parse_upstream;
use crate::http::request::encode_component;
use crate::store::redb::{OpenError, RedbStore};
use crate::store::redis::RedisStore;

/// `println!` that does not panic when standard output has gone away
/// (`authd token add ... | head -1`): what is left is dropped.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

const SEC: Duration = Duration::from_secs(1);
const TEN_YEARS: Duration = Duration::from_secs(3650 * 86_400);

/// The value parser of every on/off flag. On the command line the flag is a
/// plain switch; its `AUTHD_*` variable takes the usual spellings, in any
/// case: 1/0, true/false, yes/no, y/n, on/off (anything else is a bad value).
/// An empty variable is off, as if it were not set.
fn switch() -> Switch {
    Switch
}

/// See [`switch`].
#[derive(Clone, Copy, Debug)]
struct Switch;

impl clap::builder::TypedValueParser for Switch {
    type Value = bool;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<bool, clap::Error> {
        if value.is_empty() {
            return Ok(false);
        }
        clap::builder::BoolishValueParser::new().parse_ref(cmd, arg, value)
    }
}

/// authd: cookie-based session authentication in the style of Jira/Seraph.
#[derive(Parser, Debug)]
#[command(name = "authd", version)]
pub struct Cli {
    /// The data directory: database, TLS certificate, admin credential.
    #[arg(long, global = true, env = "AUTHD_DATA", value_name = "DIR", default_value = "./db")]
    pub data: PathBuf,

    /// A shared store instead of the data dir's database, for several authd
    /// instances: redis://, rediss://, valkey:// or redis+cluster://host:port,host:port.
    #[arg(long, global = true, env = "AUTHD_STORE", value_name = "URL", value_parser = parse_store_url)]
    pub store: Option<String>,

    /// Key namespace in the shared store (several deployments can share one server).
    #[arg(long, global = true, env = "AUTHD_STORE_NAMESPACE", value_name = "NAME", default_value = "authd",
          value_parser = crate::store::redis::parse_namespace)]
    pub store_namespace: String,

    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTPS server (the default).
    Serve(Box<ServeArgs>),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// List and end sessions.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Manage API tokens (for `Authorization: Basic user:token` or `Bearer token`).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the certificate's path and SHA-256 fingerprint.
    Cert,
    /// Copy everything from one store to another: a data dir (server
    /// stopped) or a shared-store URL. The destination must have no users.
    Migrate {
        /// Where to copy from: a data dir or a redis:// URL.
        #[arg(long, env = "AUTHD_MIGRATE_FROM", value_name = "DIR|URL")]
        from: String,
        /// Where to copy to: a data dir or a redis:// URL.
        #[arg(long, env = "AUTHD_MIGRATE_TO", value_name = "DIR|URL")]
        to: String,
    },
}

/// `authd token ...`
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make an API token for a user; it is printed once and stored hashed.
    Add {
        /// The user name.
        name: String,
        /// What the token is for.
        #[arg(long, env = "AUTHD_LABEL", default_value = "")]
        label: String,
    },
    /// List a user's API tokens (ids and labels, never the tokens).
    List {
        /// The user name.
        name: String,
        /// Print JSON instead of a table.
        #[arg(long, env = "AUTHD_JSON", action = ArgAction::SetTrue, value_parser = switch())]
        json: bool,
    },
    /// Revoke an API token by id.
    Revoke {
        /// The token's id (from `authd token list`).
        id: String,
    },
}

/// `authd user ...`
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        /// The user name.
        name: String,
        /// An email address (verified unless --unverified).
        #[arg(long, env = "AUTHD_EMAIL")]
        email: Option<String>,
        /// Give the user the admin role.
        #[arg(long, env = "AUTHD_ADMIN", action = ArgAction::SetTrue, value_parser = switch())]
        admin: bool,
        /// Create the user unverified, with or without --email (logins get
        /// 409 until `authd user verify NAME`).
        #[arg(long, env = "AUTHD_UNVERIFIED", action = ArgAction::SetTrue, value_parser = switch())]
        unverified: bool,
        /// Read the password from standard input (required).
        #[arg(long, env = "AUTHD_PASSWORD_STDIN", required = true, action = ArgAction::SetTrue, value_parser = switch())]
        password_stdin: bool,
    },
    /// Set a user's password (read from standard input); ends their sessions.
    Passwd {
        /// The user name.
        name: String,
        /// Read the password from standard input (required).
        #[arg(long, env = "AUTHD_PASSWORD_STDIN", required = true, action = ArgAction::SetTrue, value_parser = switch())]
        password_stdin: bool,
    },
    /// Mark a user's email address as verified.
    Verify {
        /// The user name.
        name: String,
    },
    /// Clear a user's failed logins.
    Unlock {
        /// The user name.
        name: String,
    },
    /// Delete a user and end their sessions.
    Del {
        /// The user name.
        name: String,
    },
    /// List users.
    List {
        /// Print JSON instead of a table.
        #[arg(long, env = "AUTHD_JSON", action = ArgAction::SetTrue, value_parser = switch())]
        json: bool,
    },
}

/// `authd session ...`
#[derive(Subcommand, Debug)]
pub enum SessionCommand {
    /// List sessions (public handles, never IDs).
    List {
        /// Only this user's sessions.
        #[arg(long, env = "AUTHD_USER")]
        user: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long, env = "AUTHD_JSON", action = ArgAction::SetTrue, value_parser = switch())]
        json: bool,
    },
    /// End one session by handle, or every session of a user.
    #[command(group = clap::ArgGroup::new("target").required(true).args(["user", "handle"]))]
    Revoke {
        /// End every session of this user.
        #[arg(long, env = "AUTHD_USER")]
        user: Option<String>,
        /// The session's handle (from `authd session list`).
        handle: Option<String>,
    },
}

/// Flags of `authd serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "AUTHD_LISTEN", value_name = "ADDR", default_value = "127.0.0.1:8443",
          value_parser = crate::config::parse_listen)]
    pub listen: SocketAddr,
    /// More names for the self-signed certificate (repeatable).
    #[arg(long = "tls-san", env = "AUTHD_TLS_SAN", value_name = "NAME", value_delimiter = ',',
          value_parser = crate::config::parse_tls_san)]
    pub tls_san: Vec<String>,
    /// Use this certificate (PEM) instead of the self-signed one.
    #[arg(long, env = "AUTHD_CERT", value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) for --cert.
    #[arg(long, env = "AUTHD_KEY", value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Public base URL for links (default: https:// plus the request's Host).
    #[arg(long, env = "AUTHD_BASE_URL", value_name = "URL", value_parser = parse_base_url)]
    pub base_url: Option<String>,
    /// A session ends this long after its last use.
    #[arg(long, env = "AUTHD_IDLE_TIMEOUT", value_name = "DURATION", default_value = "5h",
          allow_hyphen_values = true, value_parser = DurationParser::between(SEC, TEN_YEARS))]
    pub idle_timeout: Duration,
    /// A session ends this long after login, whatever its use.
    #[arg(long, env = "AUTHD_ABSOLUTE_TIMEOUT", value_name = "DURATION", default_value = "24h",
          allow_hyphen_values = true, value_parser = DurationParser::between(SEC, TEN_YEARS))]
    pub absolute_timeout: Duration,
    /// Lifetime of a remember-me series (at most 400d).
    #[arg(long, env = "AUTHD_REMEMBER_ME_AGE", value_name = "DURATION", default_value = "14d",
          allow_hyphen_values = true, value_parser = DurationParser::between(SEC, MAX_REMEMBER_ME_AGE))]
    pub remember_me_age: Duration,
    /// How long a just-rotated remember-me validator is still accepted.
    #[arg(long, env = "AUTHD_REMEMBER_ME_GRACE", value_name = "DURATION", default_value = "30s",
          allow_hyphen_values = true, value_parser = DurationParser::between(Duration::ZERO, Duration::from_secs(3600)))]
    pub remember_me_grace: Duration,
    /// Last-use time is persisted at most this often per session.
    #[arg(long, env = "AUTHD_TOUCH_INTERVAL", value_name = "DURATION", default_value = "60s",
          allow_hyphen_values = true, value_parser = DurationParser::between(Duration::ZERO, Duration::from_secs(86_400)))]
    pub touch_interval: Duration,
    /// How often the sweeper runs.
    #[arg(long, env = "AUTHD_SWEEP_INTERVAL", value_name = "DURATION", default_value = "60s",
          allow_hyphen_values = true, value_parser = DurationParser::between(Duration::from_millis(100), Duration::from_secs(86_400)))]
    pub sweep_interval: Duration,
    /// Consecutive failed logins before the account demands a challenge.
    #[arg(long, env = "AUTHD_MAX_FAILED_LOGINS", value_name = "N", default_value_t = 3,
          allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_failed_logins: u32,
    /// How long that demand lasts (doubles on each re-trigger, up to 1h).
    #[arg(long, env = "AUTHD_LOCKOUT", value_name = "DURATION", default_value = "5m",
          allow_hyphen_values = true, value_parser = DurationParser::between(SEC, Duration::from_secs(3600)))]
    pub lockout: Duration,
    /// Sessions per user; a new login evicts the oldest beyond this.
    #[arg(long, env = "AUTHD_MAX_SESSIONS_PER_USER", value_name = "N", default_value_t = 100,
          allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_sessions_per_user: u32,
    /// Prefix for all three cookie names (`__Host-` hardens them).
    #[arg(long, env = "AUTHD_COOKIE_PREFIX", value_name = "PREFIX", default_value = "",
          value_parser = parse_cookie_prefix)]
    pub cookie_prefix: String,
    /// Connections open at once; more are closed on accept.
    #[arg(long, env = "AUTHD_MAX_CONNS", value_name = "N", default_value_t = 10_000,
          allow_hyphen_values = true, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_conns: u64,
    /// How long an HTTP/2 connection may sit idle (no request running, no
    /// bytes moving) before authd closes it (HTTP/1.1: 10 s between requests).
    #[arg(long, env = "AUTHD_KEEP_ALIVE_TIMEOUT", value_name = "DURATION", default_value = "75s",
          allow_hyphen_values = true, value_parser = DurationParser::between(Duration::from_secs(1), Duration::from_secs(3600)))]
    pub keep_alive_timeout: Duration,
    /// How long a connection may leave a response it was given untaken (a
    /// client that stops reading, or keeps its HTTP/2 window shut) before
    /// authd closes it.
    #[arg(long, env = "AUTHD_SEND_TIMEOUT", value_name = "DURATION", default_value = "30s",
          allow_hyphen_values = true, value_parser = DurationParser::between(Duration::from_secs(1), Duration::from_secs(3600)))]
    pub send_timeout: Duration,
    /// The app behind authd: every path that is not authd's own is forwarded there.
    #[arg(long, env = "AUTHD_UPSTREAM", value_name = "URL", value_parser = parse_upstream)]
    pub upstream: Option<String>,
    /// An origin allowed to make credentialed cross-origin requests (repeatable; never `*`).
    #[arg(long = "cors-origin", env = "AUTHD_CORS_ORIGIN", value_name = "ORIGIN", value_delimiter = ',',
          value_parser = parse_cors_origin)]
    pub cors_origin: Vec<String>,
    /// With --upstream: anonymous browsers go to the login page, API clients get 401.
    #[arg(long, env = "AUTHD_REQUIRE_LOGIN", action = ArgAction::SetTrue, value_parser = switch())]
    pub require_login: bool,
    /// With --upstream: how long the app has to start its answer (status and
    /// headers) once the request has reached it in full; then 504.
    #[arg(long, env = "AUTHD_UPSTREAM_TIMEOUT", value_name = "DURATION", default_value = "60s",
          allow_hyphen_values = true, value_parser = DurationParser::between(Duration::from_secs(1), Duration::from_secs(86_400)))]
    pub upstream_timeout: Duration,
    /// Largest request body forwarded to the upstream, in bytes.
    #[arg(long, env = "AUTHD_MAX_BODY", value_name = "BYTES", default_value_t = 1024 * 1024,
          allow_hyphen_values = true, value_parser = clap::value_parser!(u64).range(1..=(1u64 << 32)))]
    pub max_body: u64,
    /// Failed logins from one address per ten minutes before it gets 429 (0: no such limit).
    #[arg(long, env = "AUTHD_MAX_FAILED_LOGINS_PER_ADDRESS", value_name = "N", default_value_t = 0,
          allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub max_failed_logins_per_address: u32,
    /// Leading zero bits of the login page's proof-of-work puzzle (16 ≈ a second in a browser).
    #[arg(long, env = "AUTHD_CHALLENGE_DIFFICULTY", value_name = "BITS", default_value_t = 16,
          allow_hyphen_values = true, value_parser = clap::value_parser!(u8).range(1..=28))]
    pub challenge_difficulty: u8,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, env = "AUTHD_LOG", value_name = "FILTER", default_value = "info", value_parser = parse_log_filter)]
    pub log: String,
}

impl ServeArgs {
    /// The validated configuration for `data`.
    pub fn config(&self, data: PathBuf) -> Config {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Config {
            data_dir: data,
            listen: self.listen,
            tls_sans: self.tls_san.clone(),
            cert_and_key: self.cert.clone().zip(self.key.clone()),
            base_url: self.base_url.clone(),
            timeouts: Timeouts {
                idle: self.idle_timeout,
                absolute: self.absolute_timeout,
                remember_me_age: self.remember_me_age,
                remember_me_grace: self.remember_me_grace,
                touch_interval: self.touch_interval,
                sweep_interval: self.sweep_interval,
            },
            max_failed_logins: self.max_failed_logins,
            lockout: self.lockout,
            max_sessions_per_user: self.max_sessions_per_user,
            cookie_prefix: self.cookie_prefix.clone(),
            max_conns: usize::try_from(self.max_conns).unwrap_or(usize::MAX),
            keep_alive_timeout: self.keep_alive_timeout,
            send_timeout: self.send_timeout,
            hash_workers: cores,
            hash_queue: 64,
            upstream: self.upstream.clone(),
            cors_origins: self.cors_origin.clone(),
            require_login: self.require_login,
            upstream_timeout: self.upstream_timeout,
            max_body: usize::try_from(self.max_body).unwrap_or(usize::MAX),
            store: None,
            store_namespace: "authd".into(),
            address_failures: self.max_failed_logins_per_address,
            challenge_difficulty: self.challenge_difficulty,
        }
    }
}

/// Parses the command line. Server flags belong to `authd [serve]`: given
/// before another command (`authd --listen X user list`), or before `serve`
/// itself, they are an error rather than silently ignored. `--data` goes
/// anywhere.
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{Args as _, CommandFactory as _, FromArgMatches as _};
    let matches = Cli::command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    if let Some(sub) = matches.subcommand_name() {
        let serve_flags = ServeArgs::augment_args(clap::Command::new("serve"));
        for arg in serve_flags.get_arguments() {
            let given =
                matches.value_source(arg.get_id().as_str()) == Some(clap::parser::ValueSource::CommandLine);
            if given {
                let flag = arg.get_long().unwrap_or("?");
                let hint = if sub == "serve" { "put it after `serve`" } else { "it is a server flag" };
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("'--{flag}' cannot come before `authd {sub}`: {hint}\n"),
                )
                .with_cmd(&Cli::command()));
            }
        }
    }
    // `AUTHD_PASSWORD_STDIN=0` satisfies "required" but turns the only way of
    // giving a password off.
    if let Some(Command::User(
        UserCommand::Add { password_stdin: false, .. } | UserCommand::Passwd { password_stdin: false, .. },
    )) = &cli.command
    {
        return Err(clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            "'--password-stdin' is required: the password is read from standard input only (AUTHD_PASSWORD_STDIN cannot turn it off)\n",
        )
        .with_cmd(&Cli::command()));
    }
    Ok(cli)
}

/// Prints a clap error as one line (or help/version in full) and returns its exit code.
pub fn report_usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    eprintln!("{}", one_line(&e.render().to_string()));
    ExitCode::from(2)
}

/// Folds clap's multi-line message into one line, without usage and hints.
fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("tip:"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the parsed command line; returns the process's exit code.
pub fn run(cli: Cli) -> ExitCode {
    if matches!(cli.command, None | Some(Command::Serve(_))) {
        crate::server::limit_malloc_arenas();
        crate::server::ignore_file_size_signal();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let data = cli.data.clone();
    let place =
        Place { data: data.clone(), store: cli.store.clone(), namespace: cli.store_namespace.clone() };
    let with_store = |mut cfg: Config| {
        cfg.store = cli.store.clone();
        cfg.store_namespace = cli.store_namespace.clone();
        cfg
    };
    let result = match cli.command {
        None => runtime.block_on(serve(with_store(cli.serve.config(data)), &cli.serve.log)),
        Some(Command::Serve(ref args)) => runtime.block_on(serve(with_store(args.config(data)), &args.log)),
        Some(Command::Cert) => runtime.block_on(cert(&data)).map_err(Failure::Other),
        Some(Command::User(cmd)) => runtime.block_on(user(&place, cmd)).map_err(Failure::Other),
        Some(Command::Session(cmd)) => runtime.block_on(session(&place, cmd)).map_err(Failure::Other),
        Some(Command::Token(cmd)) => runtime.block_on(token(&place, cmd)).map_err(Failure::Other),
        Some(Command::Migrate { ref from, ref to }) => {
            runtime.block_on(migrate(from, to, &cli.store_namespace)).map_err(Failure::Other)
        }
    };
    drop(runtime);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Other(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Why a command failed, which decides the exit status.
enum Failure {
    /// A flag's value is unusable (exit 2, like a parse error): one line naming the flag.
    Usage(String),
    /// Anything else (exit 1).
    Other(String),
}

/// A bad flag value found after parsing, in the words clap uses for its own.
fn bad_value(flag: &str, value: &dyn std::fmt::Display, reason: &str) -> Failure {
    Failure::Usage(crate::config::invalid_value_line(flag, value, reason))
}

async fn serve(cfg: Config, log: &str) -> Result<(), Failure> {
    check_serve_flags(&cfg).await?;
    init_logging(log).map_err(Failure::Other)?;
    if cfg.require_login && cfg.upstream.is_none() {
        // Not an error: forward auth answers 401 for anonymous requests anyway.
        tracing::warn!("--require-login does nothing without --upstream (forward auth always answers 401 when no one is logged in)");
    }
    crate::server::run(cfg, shutdown_signal()).await.map_err(|e| Failure::Other(e.to_string()))
}

/// What clap cannot check because it needs the machine: that `--data` is a
/// private directory (made if missing), that `--cert` and `--key` are files
/// holding a certificate and its private key, and that `--listen` can be
/// bound. Any failing is a bad value of that flag (exit 2), found before
/// the database is touched.
async fn check_serve_flags(cfg: &Config) -> Result<(), Failure> {
    DataDir::new(&cfg.data_dir).prepare().map_err(|e| bad_value("--data", &cfg.data_dir.display(), &e))?;
    if let Some((cert, key)) = &cfg.cert_and_key {
        crate::tls::check_own(cert, key).map_err(|e| bad_value(e.flag, &e.path.display(), &e.reason))?;
    }
    if let Err(e) = probe_bind(cfg.listen) {
        // A server already running on this data dir (and holding this port):
        // the server's own "data dir in use" message is the one to give.
        if e.kind() == std::io::ErrorKind::AddrInUse
            && cfg.store.is_none()
            && AdminClient::running(&DataDir::new(&cfg.data_dir)).await.is_some()
        {
            return Ok(());
        }
        return Err(bad_value("--listen", &cfg.listen, &format!("cannot listen there: {e}")));
    }
    Ok(())
}

/// Binds (without listening) a socket as the server's listener will be
/// bound, and lets it go.
fn probe_bind(addr: SocketAddr) -> std::io::Result<()> {
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)
}

/// Checks a `--log` filter (so a bad one is a bad flag value, exit 2).
fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s).map(|_| s.to_string()).map_err(|e| e.to_string())
}

fn init_logging(filter: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| format!("invalid value '{filter}' for '--log': {e}"))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A line that cannot be written (stderr sent to a file on a full
        // disk) is dropped; by default tracing reports it with `eprintln!`,
        // which then panics the request that logged.
        .log_internal_errors(false)
        .with_ansi(false)
        .with_target(false)
        .try_init();
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// `authd cert`: the certificate a running server on this data dir presents
/// (perhaps the operator's own `--cert`), else the data dir's self-signed
/// one, made only if there is none yet. An existing one is only read.
async fn cert(data: &std::path::Path) -> Result<(), String> {
    let dir = DataDir::new(data);
    let path = match AdminClient::running(&dir).await {
        Some(client) => client.cert_path().to_path_buf(),
        None => {
            if !dir.has_tls_pair() {
                dir.prepare()?;
                crate::tls::load(&dir, &[], None)?;
            }
            dir.cert()
        }
    };
    let first = crate::tls::read_certs(&path)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{} holds no certificate", path.display()))?;
    say!("certificate: {}", path.display());
    say!("SHA-256:     {}", crate::tls::fingerprint(&first));
    Ok(())
}

/// Where administrative commands are carried out.
enum Backend {
    /// The database, opened directly (no server running).
    Local(Box<Auth>),
    /// A running server's admin API.
    Remote(AdminClient),
}

impl Backend {
    /// The data dir's database, or the running server's admin API if a
    /// server holds it; with `--store`, the shared store directly (every
    /// instance sees the change at once). Only a command that `creates`
    /// (`user add`) makes a data dir that is not there yet: any other one
    /// names the missing directory, so a mistyped `--data` is not taken for
    /// an empty one.
    async fn open(place: &Place, creates: bool) -> Result<Backend, String> {
        let settings = AuthSettings::default();
        let dir = DataDir::new(&place.data);
        if place.store.is_none() && !creates {
            existing_dir(&dir)?;
        }
        // A server running on this data dir does it (its links carry its
        // URL), when it keeps its data in a shared store; one that keeps it
        // in the data dir's database is found by the lock below, so a stale
        // credential left by a killed server is never tried first.
        if place.store.is_some() || !dir.db().exists() {
            if let Some(client) = AdminClient::running(&dir).await {
                return Ok(Backend::Remote(client));
            }
        }
        if let Some(url) = &place.store {
            let store = RedisStore::connect(url, &place.namespace).await.map_err(|e| e.to_string())?;
            note_migration(store.migration());
            return Ok(Backend::Local(Box::new(Auth::new(
                Arc::new(store),
                Arc::new(SystemClock),
                &settings,
            ))));
        }
        if !creates && !dir.db().exists() {
            // No server answered for this dir, and it holds no database:
            // nothing to read, and none is made here (a shared-store server
            // that is down would find it in its way).
            return Err(format!(
                "{} does not exist: no database in {} (start authd on it, add a user with `authd user add`, or give --store for a shared store)",
                dir.db().display(),
                dir.root().display()
            ));
        }
        dir.prepare()?;
        let waiting_since = std::time::Instant::now();
        loop {
            match RedbStore::open(&dir.db(), Duration::from_secs(1)) {
                Ok(store) => {
                    // A server on this dir that keeps its data in a shared store
                    // does not hold this file: if it answers to this dir's
                    // credential, the file is a leftover (from before `authd
                    // migrate`), not the data.
                    if let Some(client) = AdminClient::running(&dir).await {
                        if client.answers().await {
                            drop(store);
                            return Ok(Backend::Remote(client));
                        }
                    }
                    note_migration(store.migration());
                    let auth = Auth::new(Arc::new(store), Arc::new(SystemClock), &settings);
                    return Ok(Backend::Local(Box::new(auth)));
                }
                // A running server leaves its credential next to the file.
                // Without one, another command (or a server still starting)
                // holds the file for a moment: wait for it, up to a while.
                Err(OpenError::Locked(_))
                    if !dir.admin_credential().exists() && waiting_since.elapsed() < LOCK_WAIT =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(OpenError::Locked(_)) => return AdminClient::from_dir(&dir).map(Backend::Remote),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// Tells the user of a command that it brought an older store up to date
/// (the server logs the same line).
fn note_migration(migration: Option<&str>) {
    if let Some(m) = migration {
        eprintln!("note: {m}");
    }
}

/// How long a command waits for a data dir's file that another command
/// holds (no server's credential beside it) before it says so.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Refuses a data dir that is not there, naming it.
fn existing_dir(dir: &DataDir) -> Result<(), String> {
    if dir.root().exists() {
        Ok(())
    } else {
        Err(format!(
            "{} does not exist: no authd data dir there (authd makes one on its first start, as does `authd user add`)",
            dir.root().display()
        ))
    }
}

/// Where administrative commands find the store.
struct Place {
    data: PathBuf,
    store: Option<String>,
    namespace: String,
}

/// Checks a `--store` URL.
fn parse_store_url(s: &str) -> Result<String, String> {
    if crate::store::redis::is_redis_url(s) {
        Ok(s.to_string())
    } else {
        Err("must be a redis://, rediss://, valkey://, valkeys:// or redis+cluster:// URL (leave it out to use the data dir)".into())
    }
}

/// `authd migrate --from A --to B`.
async fn migrate(from: &str, to: &str, namespace: &str) -> Result<(), String> {
    let source = open_for_migration(from, namespace, false).await?;
    let dest = open_for_migration(to, namespace, true).await?;
    let dump = source.export().await.map_err(|e| format!("cannot read {from}: {e}"))?;
    let counts = format!(
        "{} users, {} sessions, {} remember-me series, {} API tokens, {} lockout records, {} verification links",
        dump.users.len(),
        dump.sessions.len(),
        dump.series.len(),
        dump.tokens.len(),
        dump.lockouts.len(),
        dump.verifications.len()
    );
    dest.import(dump).await.map_err(|e| format!("cannot write {to}: {e}"))?;
    dest.flush().await.map_err(|e| format!("cannot write {to}: {e}"))?;
    say!("copied {counts} from {from} to {to}");
    Ok(())
}

/// A migration's source or destination; only the destination (`creates`)
/// may be a data dir that is not there yet.
async fn open_for_migration(
    place: &str,
    namespace: &str,
    creates: bool,
) -> Result<Arc<dyn crate::store::Store>, String> {
    if crate::store::redis::is_redis_url(place) {
        let store = RedisStore::connect(place, namespace).await.map_err(|e| e.to_string())?;
        note_migration(store.migration());
        return Ok(Arc::new(store));
    }
    let dir = DataDir::new(place);
    if !creates {
        existing_dir(&dir)?;
    }
    dir.prepare()?;
    match RedbStore::open(&dir.db(), Duration::from_secs(1)) {
        Ok(s) => {
            note_migration(s.migration());
            Ok(Arc::new(s))
        }
        Err(OpenError::Locked(p)) => {
            Err(format!("{} is in use by a running authd; stop it before migrating", p.display()))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn read_password() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let s = s.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&s);
    if s.is_empty() {
        return Err("no password on standard input (--password-stdin)".into());
    }
    // The same words whether a running server or the database gets it.
    crate::password::check_new(s).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

fn user_path(name: &str, tail: &str) -> String {
    format!("/rest/authd/1/admin/users/{}{tail}", encode_component(name))
}

async fn user(place: &Place, cmd: UserCommand) -> Result<(), String> {
    // Read the password before opening anything, so a missing one changes nothing.
    let password = match &cmd {
        UserCommand::Add { .. } | UserCommand::Passwd { .. } => Some(read_password()?),
        _ => None,
    };
    let backend = Backend::open(place, matches!(cmd, UserCommand::Add { .. })).await?;
    match cmd {
        UserCommand::Add { name, email, admin, unverified, .. } => {
            let req = AddUser { name, password: password.unwrap_or_default(), email, admin, unverified };
            let view: UserView = match &backend {
                Backend::Local(auth) => auth.add_user(req).await.map_err(|e| e.to_string())?,
                Backend::Remote(c) => {
                    let body = serde_json::to_value(&req).map_err(|e| e.to_string())?;
                    c.call(Method::POST, "/rest/authd/1/admin/users", Some(&body)).await?
                }
            };
            say!("added user {}{}", view.name, if view.roles.is_empty() { "" } else { " (admin)" });
            if let Some(link) = &view.verification_link {
                say!("email verification link for {}: {link}", view.email.as_deref().unwrap_or(""));
            }
        }
        UserCommand::Passwd { name, .. } => {
            let password = password.unwrap_or_default();
            match &backend {
                Backend::Local(auth) => {
                    auth.set_password(&name, password, None).await.map_err(|e| e.to_string())?;
                }
                Backend::Remote(c) => {
                    let body = json!({ "password": password });
                    c.call::<serde_json::Value>(Method::PUT, &user_path(&name, "/password"), Some(&body))
                        .await?;
                }
            }
            say!("password of {name} changed; their sessions were ended");
        }
        UserCommand::Verify { name } => {
            match &backend {
                Backend::Local(auth) => drop(auth.verify_email(&name).await.map_err(|e| e.to_string())?),
                Backend::Remote(c) => {
                    drop(c.call::<UserView>(Method::POST, &user_path(&name, "/verify"), None).await?)
                }
            }
            say!("email address of {name} marked verified");
        }
        UserCommand::Unlock { name } => {
            match &backend {
                Backend::Local(auth) => drop(auth.unlock(&name).await.map_err(|e| e.to_string())?),
                Backend::Remote(c) => {
                    drop(c.call::<UserView>(Method::POST, &user_path(&name, "/unlock"), None).await?)
                }
            }
            say!("{name} unlocked");
        }
        UserCommand::Del { name } => {
            match &backend {
                Backend::Local(auth) => auth.delete_user(&name).await.map_err(|e| e.to_string())?,
                Backend::Remote(c) => {
                    c.call::<serde_json::Value>(Method::DELETE, &user_path(&name, ""), None).await?;
                }
            }
            say!("deleted user {name}");
        }
        UserCommand::List { json } => {
            let users: Vec<UserView> = match &backend {
                Backend::Local(auth) => auth.list_users().await.map_err(|e| e.to_string())?,
                Backend::Remote(c) => c.call(Method::GET, "/rest/authd/1/admin/users", None).await?,
            };
            if json {
                say!("{}", serde_json::to_string_pretty(&users).map_err(|e| e.to_string())?);
            } else {
                print_table(
                    &["NAME", "EMAIL", "VERIFIED", "ROLES", "LOGINS", "FAILED", "LAST LOGIN"],
                    users.iter().map(|u| {
                        vec![
                            u.name.clone(),
                            u.email.clone().unwrap_or_else(|| "-".into()),
                            if u.email_verified { "yes" } else { "no" }.into(),
                            if u.roles.is_empty() { "-".into() } else { u.roles.join(",") },
                            u.login_count.to_string(),
                            u.failed_login_count.to_string(),
                            u.last_login_time.clone().unwrap_or_else(|| "-".into()),
                        ]
                    }),
                );
            }
        }
    }
    Ok(())
}

async fn session(place: &Place, cmd: SessionCommand) -> Result<(), String> {
    let backend = Backend::open(place, false).await?;
    match cmd {
        SessionCommand::List { user, json } => {
            let sessions: Vec<SessionView> = match &backend {
                Backend::Local(auth) => {
                    auth.list_sessions(user.as_deref()).await.map_err(|e| e.to_string())?
                }
                Backend::Remote(c) => {
                    let path = match &user {
                        Some(u) => format!("/rest/authd/1/admin/sessions?user={}", encode_component(u)),
                        None => "/rest/authd/1/admin/sessions".into(),
                    };
                    c.call(Method::GET, &path, None).await?
                }
            };
            if json {
                say!("{}", serde_json::to_string_pretty(&sessions).map_err(|e| e.to_string())?);
            } else {
                print_table(
                    &["HANDLE", "USER", "CREATED", "LAST USED", "ADDRESS", "BROWSER"],
                    sessions.iter().map(|s| {
                        vec![
                            s.handle.clone(),
                            s.user.clone(),
                            s.created.clone(),
                            s.last_used.clone(),
                            s.address.clone().unwrap_or_else(|| "-".into()),
                            s.browser.clone(),
                        ]
                    }),
                );
            }
        }
        SessionCommand::Revoke { user: Some(name), .. } => {
            let n = match &backend {
                Backend::Local(auth) => auth.revoke_user(&name).await.map_err(|e| e.to_string())?,
                Backend::Remote(c) => {
                    let v: serde_json::Value =
                        c.call(Method::DELETE, &user_path(&name, "/sessions"), None).await?;
                    v.get("revoked")
                        .and_then(serde_json::Value::as_u64)
                        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
                }
            };
            say!("ended {n} session(s) of {name}");
        }
        SessionCommand::Revoke { handle: Some(handle), .. } => {
            match &backend {
                Backend::Local(auth) => auth.revoke_handle(&handle).await.map_err(|e| e.to_string())?,
                Backend::Remote(c) => {
                    let path = format!("/rest/authd/1/admin/sessions/{}", encode_component(&handle));
                    c.call::<serde_json::Value>(Method::DELETE, &path, None).await?;
                }
            }
            say!("ended session {handle}");
        }
        SessionCommand::Revoke { .. } => return Err("give a session handle or --user NAME".into()),
    }
    Ok(())
}

async fn token(place: &Place, cmd: TokenCommand) -> Result<(), String> {
    let backend = Backend::open(place, false).await?;
    match cmd {
        TokenCommand::Add { name, label } => {
            let view: TokenView = match &backend {
                Backend::Local(auth) => {
                    let user = auth.find_user(&name).await.map_err(|e| e.to_string())?;
                    auth.add_token(&user, &label).await.map_err(|e| e.to_string())?
                }
                Backend::Remote(c) => {
                    let body = json!({ "label": label });
                    c.call(Method::POST, &user_path(&name, "/tokens"), Some(&body)).await?
                }
            };
            say!("added API token {} for {}; it is shown only this once:", view.id, view.user);
            say!("{}", view.token.unwrap_or_default());
        }
        TokenCommand::List { name, json } => {
            let tokens: Vec<TokenView> = match &backend {
                Backend::Local(auth) => {
                    let user = auth.find_user(&name).await.map_err(|e| e.to_string())?;
                    auth.list_tokens(&user).await.map_err(|e| e.to_string())?
                }
                Backend::Remote(c) => c.call(Method::GET, &user_path(&name, "/tokens"), None).await?,
            };
            if json {
                say!("{}", serde_json::to_string_pretty(&tokens).map_err(|e| e.to_string())?);
            } else {
                print_table(
                    &["ID", "USER", "LABEL", "CREATED"],
                    tokens
                        .iter()
                        .map(|t| vec![t.id.clone(), t.user.clone(), t.label.clone(), t.created.clone()]),
                );
            }
        }
        TokenCommand::Revoke { id } => {
            match &backend {
                Backend::Local(auth) => auth.revoke_token(&id, None).await.map_err(|e| e.to_string())?,
                Backend::Remote(c) => {
                    let path = format!("/rest/authd/1/admin/tokens/{}", encode_component(&id));
                    c.call::<serde_json::Value>(Method::DELETE, &path, None).await?;
                }
            }
            say!("revoked API token {id}");
        }
    }
    Ok(())
}

fn print_table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        say!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        parse_from(std::iter::once("authd").chain(args.iter().copied()))
    }

    #[test]
    fn serve_is_the_default_and_flags_parse() {
        let cli = parse(&["--data", "/tmp/x", "--idle-timeout", "2s", "--listen", "127.0.0.1:0"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.idle_timeout, Duration::from_secs(2));
        let cli = parse(&["serve", "--data", "/tmp/x", "--absolute-timeout", "30m"]).unwrap();
        match cli.command {
            Some(Command::Serve(a)) => assert_eq!(a.absolute_timeout, Duration::from_secs(1800)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_values_name_the_flag_on_one_line() {
        for (args, flag) in [
            (vec!["--idle-timeout", "banana"], "--idle-timeout"),
            (vec!["--remember-me-age", "401d"], "--remember-me-age"),
            (vec!["--max-failed-logins", "0"], "--max-failed-logins"),
            (vec!["--listen", "nowhere"], "--listen"),
            (vec!["--listen", "example.com:8443"], "--listen"),
        ] {
            let e = parse(&args).unwrap_err();
            let line = one_line(&e.render().to_string());
            assert!(line.contains(flag), "{line}");
            assert!(!line.contains('\n'));
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn data_goes_anywhere_but_server_flags_not_before_a_command() {
        let cli = parse(&["--data", "d", "user", "list"]).unwrap();
        assert_eq!(cli.data, PathBuf::from("d"));
        assert!(parse(&["--data", "d", "serve", "--listen", "127.0.0.1:0"]).is_ok());
        let e = parse(&["--listen", "127.0.0.1:0", "user", "list"]).unwrap_err();
        assert!(one_line(&e.render().to_string()).contains("--listen"));
        assert!(parse(&["--idle-timeout", "2s", "serve"]).is_err());
    }

    #[test]
    fn a_negative_value_is_an_invalid_value_of_its_flag() {
        let e = parse(&["--lockout", "-5m"]).unwrap_err();
        assert!(one_line(&e.render().to_string()).contains("--lockout"), "{e}");
        let e = parse(&["--max-failed-logins", "-1"]).unwrap_err();
        assert!(one_line(&e.render().to_string()).contains("--max-failed-logins"), "{e}");
    }

    #[test]
    fn every_switch_takes_the_usual_spellings_from_its_variable() {
        use clap::CommandFactory as _;
        fn walk(cmd: &clap::Command, seen: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if !matches!(arg.get_action(), ArgAction::SetTrue) {
                    continue;
                }
                let name = arg.get_id().to_string();
                assert!(arg.get_env().is_some(), "--{name} reads no AUTHD_* variable");
                // The same argument taking a value, so that its parser can be
                // fed what the variable would hold.
                let probe = clap::Command::new("probe")
                    .arg(arg.clone().env(None::<&str>).action(ArgAction::Set).required(false));
                let parse = |text: &str| {
                    probe
                        .clone()
                        .try_get_matches_from(["probe", &format!("--{}={text}", arg.get_long().unwrap())])
                        .map(|m| m.get_one::<bool>(arg.get_id().as_str()).copied())
                };
                for (text, want) in
                    [("1", true), ("yes", true), ("ON", true), ("True", true), ("0", false), ("no", false)]
                        .into_iter()
                        .chain([("Off", false), ("FALSE", false), ("", false)])
                {
                    assert_eq!(parse(text).ok().flatten(), Some(want), "--{name} from {text:?}");
                }
                assert!(parse("banana").is_err(), "--{name}");
                seen.push(name);
            }
            for sub in cmd.get_subcommands() {
                walk(sub, seen);
            }
        }
        let mut seen = Vec::new();
        walk(&Cli::command(), &mut seen);
        for name in ["require_login", "json", "admin", "unverified", "password_stdin"] {
            assert!(seen.iter().any(|s| s == name), "--{name} was not checked: {seen:?}");
        }
    }

    #[test]
    fn admin_commands_parse() {
        let cli =
            parse(&["user", "add", "bob", "--email", "b@x", "--password-stdin", "--data", "d"]).unwrap();
        assert!(matches!(cli.command, Some(Command::User(UserCommand::Add { .. }))));
        assert_eq!(cli.data, PathBuf::from("d"));
        assert!(parse(&["user", "add", "bob"]).is_err(), "--password-stdin is required");
        assert!(parse(&["session", "revoke"]).is_err(), "a target is required");
        assert!(parse(&["session", "revoke", "--user", "bob"]).is_ok());
        assert!(parse(&["session", "revoke", "abcdef012345"]).is_ok());
    }
}
