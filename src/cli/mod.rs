//! Command line: global options, subcommands, exit codes. One file per subcommand.

mod bounces;
mod generate;
mod ingest;
mod invalid;
mod prune;
mod query;
mod reparse;
mod summary;
mod watch;

use clap::{Parser, Subcommand};
use dmarcdb::config::Config;
use std::path::PathBuf;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success (invalid inputs were kept and counted: that is not a failure)
  1  operational failure: server unreachable, login refused, a path that
     cannot be read, database error (other inputs are still processed first)
  2  usage or configuration error (nothing was done)";

/// Ingest DMARC aggregate reports from IMAP and files into SQLite, and show
/// who sends as your domain and who fails.
#[derive(Debug, Parser)]
#[command(name = "dmarcdb", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The SQLite database [default: $DMARCDB_DB, else ~/.local/share/dmarcdb/dmarcdb.sqlite]
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    /// The config file [default: $DMARCDB_CONFIG, else ~/.config/dmarcdb/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Print what happens to every input.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Store reports from files, directories, mbox files, stdin (-) or IMAP.
    Ingest(ingest::Args),
    /// Show failing senders and what receivers did, per policy domain.
    Summary(summary::Args),
    /// Run a shipped query from sql/queries/ (by name) or an .sql file.
    Query(query::Args),
    /// Bounced recipients by provider, reason, detail and status.
    Bounces(bounces::Args),
    /// List the inputs that could not be read, with the reason; `invalid show ID` for one.
    Invalid(invalid::Args),
    /// Read every stored raw input again with this version's code (after an upgrade).
    Reparse(reparse::Args),
    /// Delete reports and inputs older than a number of days.
    Prune(prune::Args),
    /// Write a synthetic corpus (benchmarks; deterministic from --seed).
    #[command(hide = true)]
    Generate(generate::Args),
}

/// Global settings every subcommand gets.
pub struct Global {
    pub db: PathBuf,
    config_path: PathBuf,
    config_given: bool,
    pub quiet: bool,
    pub verbose: bool,
}

impl Global {
    /// Load the config file (a missing default file is an empty config).
    pub fn config(&self) -> Result<Config, Failure> {
        Config::load(&self.config_path, self.config_given)
            .map_err(|e| Failure::usage(e.to_string()))
    }

    /// Open the store, creating it if needed (ingest).
    pub fn store(&self) -> Result<dmarcdb::store::Store, Failure> {
        dmarcdb::store::Store::open(&self.db)
            .map_err(|e| Failure::operational(format!("{}: {e}", self.db.display())))
    }

    /// Take the run lock next to the database: `None` when another run holds
    /// it and `wait` is false. Waiting says so once (unless -q).
    pub fn lock(&self, wait: bool) -> Result<Option<dmarcdb::lock::RunLock>, Failure> {
        use dmarcdb::lock::{Acquired, RunLock};
        let fail = |e: std::io::Error| {
            Failure::operational(format!(
                "cannot take the lock {}: {e}",
                RunLock::path_for(&self.db).display()
            ))
        };
        match RunLock::try_acquire(&self.db).map_err(fail)? {
            Acquired::Held(l) => Ok(Some(l)),
            Acquired::Busy if !wait => Ok(None),
            Acquired::Busy => {
                if !self.quiet {
                    say(&format!(
                        "dmarcdb: waiting for another dmarcdb run to finish (it holds {})",
                        RunLock::path_for(&self.db).display()
                    ));
                }
                RunLock::acquire(&self.db).map(Some).map_err(fail)
            }
        }
    }

    /// Open a store that must exist (summary, query).
    pub fn existing_store(&self) -> Result<dmarcdb::store::Store, Failure> {
        dmarcdb::store::Store::open_existing(&self.db).map_err(|e| match e {
            dmarcdb::store::StoreError::Missing { .. } => Failure::operational(e.to_string()),
            e => Failure::operational(format!("{}: {e}", self.db.display())),
        })
    }
}

/// An error that ends the command, with its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// Exit 1.
    pub fn operational(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
    /// Exit 2.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home().join(fallback))
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Notes and warnings on stderr through the `log` facade: dmarcdb's own at
/// info and up, warnings only with -q, debug detail with -v; `RUST_LOG`
/// chooses freely (`RUST_LOG=debug`, `RUST_LOG=dmarcdb=trace,rustls=debug`). async-imap logs every command it sends at
/// trace level, LOGIN with its password included: it never gets past debug.
fn init_logging(verbose: bool, quiet: bool) {
    use std::io::Write;
    let mut b = env_logger::Builder::new();
    b.filter_level(log::LevelFilter::Off);
    let own = if quiet {
        log::LevelFilter::Warn
    } else if verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            b.parse_filters(&spec);
        }
        _ => {
            b.filter_module("dmarcdb", own);
        }
    }
    b.format(|f, r| match r.level() {
        log::Level::Error => writeln!(f, "dmarcdb: error: {}", r.args()),
        log::Level::Warn => writeln!(f, "warning: {}", r.args()),
        log::Level::Info => writeln!(f, "note: {}", r.args()),
        _ => writeln!(
            f,
            "{} {}: {}",
            r.level().as_str().to_lowercase(),
            r.target(),
            r.args()
        ),
    });
    // After the user's filters: a directive for the same module replaces theirs.
    b.filter_module("async_imap", log::LevelFilter::Debug);
    b.target(env_logger::Target::Pipe(Box::new(SayWriter::default())));
    let _ = b.try_init();
}

/// Log lines go through [`say`], so that they do not tear a progress bar.
#[derive(Default)]
struct SayWriter(Vec<u8>);

impl std::io::Write for SayWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        while let Some(i) = self.0.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.0.drain(..=i).collect();
            say(String::from_utf8_lossy(&line).trim_end());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The progress bar, when one is shown (stderr is a terminal, no -q/-v).
static BAR: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Show a progress bar while `f` runs if stderr is a terminal and neither -q
/// nor -v is given (cron gets the closing line only).
pub fn with_progress<T>(g: &Global, f: impl FnOnce(Option<&indicatif::ProgressBar>) -> T) -> T {
    use std::io::IsTerminal;
    if g.quiet || g.verbose || !std::io::stderr().is_terminal() {
        return f(None);
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} inputs, {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    if let Ok(mut b) = BAR.lock() {
        *b = Some(bar.clone());
    }
    let out = f(Some(&bar));
    if let Ok(mut b) = BAR.lock() {
        *b = None;
    }
    bar.finish_and_clear();
    out
}

/// Run the command line; returns the exit code.
pub fn main() -> u8 {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let config_env = env_path("DMARCDB_CONFIG");
    let global = Global {
        db: cli
            .db
            .clone()
            .or_else(|| env_path("DMARCDB_DB"))
            .unwrap_or_else(|| xdg("XDG_DATA_HOME", ".local/share").join("dmarcdb/dmarcdb.sqlite")),
        config_given: cli.config.is_some() || config_env.is_some(),
        config_path: cli
            .config
            .clone()
            .or(config_env)
            .unwrap_or_else(|| xdg("XDG_CONFIG_HOME", ".config").join("dmarcdb/config.toml")),
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let result = match &cli.command {
        Command::Ingest(a) => ingest::run(&global, a),
        Command::Summary(a) => summary::run(&global, a),
        Command::Query(a) => query::run(&global, a),
        Command::Bounces(a) => bounces::run(&global, a),
        Command::Invalid(a) => invalid::run(&global, a),
        Command::Reparse(a) => reparse::run(&global, a),
        Command::Prune(a) => prune::run(&global, a),
        Command::Generate(a) => generate::run(&global, a),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            say(&format!("dmarcdb: {}", f.message));
            f.code
        }
    }
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
/// `--domain D` as the store keeps domains: lowercase, without a final dot.
pub fn domain_arg(d: Option<&str>) -> Result<Option<String>, Failure> {
    match d.map(|d| d.trim().trim_end_matches('.').to_lowercase()) {
        Some(d) if d.is_empty() => Err(Failure::usage("--domain needs a domain name")),
        d => Ok(d),
    }
}

pub fn print(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::operational(format!("cannot write output: {e}"))),
    }
}

/// One line to stderr. A closed stderr (`2>&1 | head`) must not abort a run
/// half-way, so write errors are ignored.
pub fn say(line: &str) {
    use std::io::Write;
    // One line, and no terminal escapes from a hostile file name or report.
    let line = dmarcdb::extract::printable_name(line);
    let line = line.as_str();
    let bar = BAR.lock().ok().and_then(|b| b.clone());
    match bar {
        Some(bar) => bar.suspend(|| {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }),
        None => {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}
