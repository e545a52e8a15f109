//! The configuration file (`config.toml`): IMAP accounts and resource caps.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration file. Every section is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// IMAP accounts polled by `ingest --imap`, in order.
    #[serde(default)]
    pub imap: Vec<ImapAccount>,
    /// Resource caps applied to every input.
    #[serde(default)]
    pub limits: Limits,
    /// Defaults for `dmarcdb prune`.
    #[serde(default)]
    pub prune: Prune,
}

/// The `[prune]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prune {
    /// `prune` without `--older-than` removes what is older than this, e.g. "400d".
    pub older_than: Option<String>,
}

/// Parse a number of days written `Nd` (e.g. `400d`).
pub fn parse_days(s: &str) -> Result<i64, String> {
    s.trim()
        .strip_suffix('d')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| (1..=100_000).contains(n))
        .ok_or_else(|| format!("{s:?}: expected a number of days from 1d to 100000d, such as 400d"))
}

/// How the IMAP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS, port 993).
    #[default]
    Implicit,
    /// Plain connection upgraded with STARTTLS (port 143).
    Starttls,
    /// No TLS at all; only allowed to a loopback address.
    None,
}

/// How an account logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// IMAP LOGIN with a password (one of the `password*` keys).
    #[default]
    Login,
    /// SASL XOAUTH2 (Gmail, Microsoft 365) with an OAuth2 access token from `token_command`.
    Xoauth2,
    /// SASL OAUTHBEARER (RFC 7628) with an OAuth2 access token from `token_command`.
    Oauthbearer,
}

impl AuthMethod {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Login => "login",
            AuthMethod::Xoauth2 => "xoauth2",
            AuthMethod::Oauthbearer => "oauthbearer",
        }
    }
}

/// The inline `password` of an account. Its Debug output is `***`, so that
/// printing a config (or an account) can never show it.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct InlinePassword(String);

impl InlinePassword {
    /// The password itself, for logging in.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for InlinePassword {
    fn from(s: &str) -> Self {
        InlinePassword(s.to_string())
    }
}

impl std::fmt::Debug for InlinePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// One `[[imap]]` account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapAccount {
    /// Names the account in logs, errors and the store.
    pub name: String,
    pub host: String,
    /// Defaults to 993 for implicit TLS, 143 otherwise.
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    /// Verify the server certificate (default true). Turning it off warns on every run.
    #[serde(default = "yes")]
    pub tls_verify: bool,
    /// Extra CA certificates (PEM) to trust, e.g. for a private CA.
    pub ca_file: Option<PathBuf>,
    pub username: String,
    /// How to log in (default "login": LOGIN with a password).
    #[serde(default)]
    pub auth: AuthMethod,
    /// With `auth = "xoauth2"` or `"oauthbearer"`: a shell command whose first
    /// line of output is an OAuth2 access token, run on every poll.
    pub token_command: Option<String>,
    /// Inline password (prefer one of the other three).
    pub password: Option<InlinePassword>,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    pub password_env: Option<String>,
    /// A shell command whose first line of output is the password.
    pub password_command: Option<String>,
    /// The folder reports arrive in.
    #[serde(default = "default_folder")]
    pub folder: String,
    /// Where stored mails are moved.
    #[serde(default = "default_archive")]
    pub archive_folder: String,
    /// Where mails that could not be read are moved.
    #[serde(default = "default_invalid")]
    pub invalid_folder: String,
    /// Messages per UID FETCH and per commit.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// `--watch`: how long one IDLE may last before it is ended and issued
    /// again (RFC 2177: at most 29 minutes). Written "25m", "90s", "1h" or a
    /// number of seconds; default 25 minutes.
    #[serde(default = "default_idle_timeout", deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// `--watch` on a server without IDLE: the time between polls (same
    /// syntax); default 5 minutes.
    #[serde(default = "default_poll_interval", deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// A second folder of this account to read, where bounces (DSNs) for the
    /// domain arrive; its mails go to the same archive and invalid folders.
    pub bounce_folder: Option<String>,
}

impl ImapAccount {
    /// The account once per folder it reads: `folder`, then `bounce_folder`.
    pub fn mailboxes(&self) -> Vec<ImapAccount> {
        let mut out = vec![self.clone()];
        if let Some(b) = self.bounce_folder.as_ref().filter(|b| **b != self.folder) {
            out.push(ImapAccount {
                folder: b.clone(),
                bounce_folder: None,
                ..self.clone()
            });
        }
        out
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Implicit => 993,
            _ => 143,
        })
    }
}

/// Caps that bound what one input may cost. Going over one makes the input
/// invalid with a reason; it never runs the process out of memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Decompressed bytes per input, over all its parts (default 2 GiB).
    pub max_decompressed_bytes: u64,
    /// Entries per zip archive (default 1000).
    pub max_zip_entries: usize,
    /// Archives inside archives: a gzip in a zip is depth 2 (default 4).
    pub max_nesting: usize,
    /// IMAP messages larger than this (RFC822.SIZE) are not fetched (default 64 MiB).
    pub max_message_bytes: u64,
    /// Files, mbox messages and stdin larger than this are kept as invalid
    /// with their header only (default 64 MiB; an input is held in memory
    /// whole, and SQLite cannot hold more than 1 GB in one blob).
    pub max_input_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed_bytes: 2 << 30,
            max_zip_entries: 1000,
            max_nesting: 4,
            max_message_bytes: 64 << 20,
            max_input_bytes: 64 << 20,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_folder() -> String {
    "INBOX".into()
}
fn default_archive() -> String {
    "Archive".into()
}
fn default_invalid() -> String {
    "Invalid".into()
}
fn default_batch() -> usize {
    100
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(25 * 60)
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(5 * 60)
}

/// The longest IDLE RFC 2177 allows a client before it re-issues it.
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(29 * 60);
/// The longest `poll_interval`.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Parse a duration written `90s`, `25m` or `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let unit = match t.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        _ => 0,
    };
    t.get(..t.len().saturating_sub(1))
        .filter(|_| unit > 0)
        .and_then(|n| n.parse::<u64>().ok())
        .and_then(|n| n.checked_mul(unit))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?}: expected a duration such as 90s, 25m or 1h"))
}

/// A duration from a string (`"25m"`, see [`parse_duration`]) or a number of seconds.
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration such as \"90s\", \"25m\" or \"1h\", or a number of seconds")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_secs)
                .map_err(|_| E::custom(format!("{v}: a duration cannot be negative")))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("config {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// The values do not make sense together.
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Read and check a config file. A missing file is an empty config only
    /// when `required` is false (the default path).
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Config::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        let config = Config::from_toml(&text).map_err(|message| ConfigError::Syntax {
            path: path.into(),
            message,
        })?;
        config.check_at().map_err(|p| {
            // Name the line of the key the problem is about, where there is one.
            let line =
                p.at.and_then(|(account, key)| key_line(&text, account, key));
            ConfigError::Invalid {
                path: path.into(),
                message: match line {
                    Some(l) => format!("line {l}: {}", p.message),
                    None => p.message,
                },
            }
        })?;
        if let Some(a) = config.imap.iter().find(|a| a.password.is_some()) {
            check_private(path, &a.name).map_err(|message| ConfigError::Invalid {
                path: path.into(),
                message,
            })?;
        }
        Ok(config)
    }

    /// Parse TOML text.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| {
            // Name the line: the message alone ("invalid type: string") does not say where.
            let line = e
                .span()
                .map(|s| text.get(..s.start).unwrap_or("").matches('\n').count() + 1);
            match line {
                Some(l) => format!("line {l}: {}", e.message()),
                None => e.message().to_string(),
            }
        })
    }

    #[cfg(test)]
    fn check(&self) -> Result<(), String> {
        self.check_at().map_err(|p| p.message)
    }

    fn check_at(&self) -> Result<(), Problem> {
        let l = &self.limits;
        for (key, v) in [
            ("max_input_bytes", l.max_input_bytes),
            ("max_message_bytes", l.max_message_bytes),
            ("max_decompressed_bytes", l.max_decompressed_bytes),
        ] {
            if v < 1024 {
                return Err(format!("limits.{key} must be at least 1024 bytes").into());
            }
        }
        if l.max_zip_entries == 0 || l.max_nesting == 0 {
            return Err("limits.max_zip_entries and limits.max_nesting must be at least 1".into());
        }
        if self.limits.max_input_bytes > 900_000_000 {
            return Err("limits.max_input_bytes must be at most 900000000 (SQLite keeps each input in one blob)".into());
        }
        if let Some(d) = &self.prune.older_than {
            parse_days(d).map_err(|e| format!("prune.older_than: {e}"))?;
        }
        let mut names = std::collections::HashSet::new();
        for (i, a) in self.imap.iter().enumerate() {
            if !names.insert(a.name.as_str()) {
                return Err(Problem::at(
                    i,
                    "name",
                    format!("two [[imap]] accounts are named {:?}", a.name),
                ));
            }
            check_auth(i, a)?;
            if a.tls == TlsMode::None && !is_loopback(&a.host) {
                return Err(Problem::at(
                    i,
                    "tls",
                    format!(
                        "account {:?}: tls = \"none\" is only allowed to a loopback address, not {}",
                        a.name, a.host
                    ),
                ));
            }
            for (key, path) in [("ca_file", &a.ca_file), ("password_file", &a.password_file)] {
                if let Some(p) = path.as_ref().filter(|p| !p.is_file()) {
                    return Err(Problem::at(
                        i,
                        key,
                        format!(
                            "account {:?}: {key} {} is not a readable file",
                            a.name,
                            p.display()
                        ),
                    ));
                }
            }
            if a.batch_size == 0 {
                return Err(Problem::at(
                    i,
                    "batch_size",
                    format!("account {:?}: batch_size must be at least 1", a.name),
                ));
            }
            if a.idle_timeout < Duration::from_secs(1) || a.idle_timeout > MAX_IDLE_TIMEOUT {
                return Err(Problem::at(
                    i,
                    "idle_timeout",
                    format!(
                        "account {:?}: idle_timeout must be from 1s to 29m (RFC 2177: re-issue IDLE at least every 29 minutes)",
                        a.name
                    ),
                ));
            }
            if a.poll_interval < Duration::from_secs(1) || a.poll_interval > MAX_POLL_INTERVAL {
                return Err(Problem::at(
                    i,
                    "poll_interval",
                    format!("account {:?}: poll_interval must be from 1s to 24h", a.name),
                ));
            }
        }
        Ok(())
    }
}

/// A file holding an inline password must not be readable by others.
#[cfg(unix)]
fn check_private(path: &Path, account: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot check its permissions: {e}"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "account {account:?} has an inline password, but the file can be read by others (mode {:o}); \
             run `chmod 600 {}`, or use password_file, password_env or password_command",
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &str) -> Result<(), String> {
    Ok(())
}

/// A failed check: the message, and the account (its index in `imap`) and
/// key it is about, so that [`Config::load`] can name the line.
struct Problem {
    message: String,
    at: Option<(usize, &'static str)>,
}

impl Problem {
    fn at(account: usize, key: &'static str, message: String) -> Problem {
        Problem {
            message,
            at: Some((account, key)),
        }
    }
}

impl From<String> for Problem {
    fn from(message: String) -> Problem {
        Problem { message, at: None }
    }
}

impl From<&str> for Problem {
    fn from(message: &str) -> Problem {
        message.to_string().into()
    }
}

/// The password keys, in the order [`crate::fetch::imap::resolve_password`] tries them.
const PASSWORD_KEYS: [&str; 4] = [
    "password",
    "password_file",
    "password_env",
    "password_command",
];

/// `auth` and the credential keys of one account fit together: LOGIN takes
/// exactly one password source and no `token_command`; XOAUTH2 and
/// OAUTHBEARER take a `token_command` and no password.
fn check_auth(i: usize, a: &ImapAccount) -> Result<(), Problem> {
    let set: Vec<&'static str> = PASSWORD_KEYS
        .into_iter()
        .zip([
            a.password.is_some(),
            a.password_file.is_some(),
            a.password_env.is_some(),
            a.password_command.is_some(),
        ])
        .filter_map(|(key, set)| set.then_some(key))
        .collect();
    let name = &a.name;
    match a.auth {
        AuthMethod::Login => {
            if a.token_command.is_some() {
                return Err(Problem::at(
                    i,
                    "token_command",
                    format!(
                        "account {name:?}: token_command is only used with auth = \"xoauth2\" or \"oauthbearer\" (auth is \"login\")"
                    ),
                ));
            }
            match set.as_slice() {
                [_] => Ok(()),
                [] => Err(Problem::at(
                    i,
                    "name",
                    format!(
                        "account {name:?}: set one of password_file, password_env, password_command or password"
                    ),
                )),
                [_, second, ..] => Err(Problem::at(
                    i,
                    second,
                    format!(
                        "account {name:?}: set only one of password, password_file, password_env, password_command"
                    ),
                )),
            }
        }
        AuthMethod::Xoauth2 | AuthMethod::Oauthbearer => {
            let auth = a.auth.as_str();
            if let Some(key) = set.first() {
                return Err(Problem::at(
                    i,
                    key,
                    format!(
                        "account {name:?}: {key} cannot be used with auth = {auth:?}, which logs in with the OAuth2 token from token_command; remove {key}"
                    ),
                ));
            }
            match &a.token_command {
                None => Err(Problem::at(
                    i,
                    "auth",
                    format!(
                        "account {name:?}: auth = {auth:?} needs token_command, a command that prints an OAuth2 access token"
                    ),
                )),
                Some(c) if c.trim().is_empty() => Err(Problem::at(
                    i,
                    "token_command",
                    format!("account {name:?}: token_command is empty"),
                )),
                Some(_) => Ok(()),
            }
        }
    }
}

/// The line of `key` in the `account`-th `[[imap]]` table of `text`, if it is there.
fn key_line(text: &str, account: usize, key: &str) -> Option<usize> {
    #[derive(Deserialize)]
    struct Accounts {
        #[serde(default)]
        imap: Vec<std::collections::BTreeMap<String, toml::Spanned<toml::Value>>>,
    }
    let accounts: Accounts = toml::from_str(text).ok()?;
    let start = accounts.imap.get(account)?.get(key)?.span().start;
    Some(text.get(..start)?.matches('\n').count() + 1)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let c = Config::from_toml(
            "[[imap]]\nname='a'\nhost='imap.example.com'\nusername='u'\npassword_env='PW'\n",
        )
        .unwrap();
        assert!(c.check().is_ok());
        let a = &c.imap[0];
        assert_eq!(
            (a.port(), a.folder.as_str(), a.batch_size),
            (993, "INBOX", 100)
        );
        assert!(a.tls_verify);
        assert_eq!(c.limits.max_decompressed_bytes, 2 << 30);

        let none = Config::from_toml(
            "[[imap]]\nname='a'\nhost='imap.example.com'\ntls='none'\nusername='u'\npassword_env='PW'\n",
        )
        .unwrap();
        assert!(none.check().unwrap_err().contains("loopback"));
        let two = Config::from_toml(
            "[[imap]]\nname='a'\nhost='h'\nusername='u'\npassword='x'\npassword_env='PW'\n",
        )
        .unwrap();
        assert!(two.check().unwrap_err().contains("only one"));
        assert!(Config::from_toml("[[imap]]\nname='a'\nbogus=1\n").is_err());
        let inline =
            Config::from_toml("[[imap]]\nname='a'\nhost='h'\nusername='u'\npassword='hunter2'\n")
                .unwrap();
        assert!(!format!("{inline:?}").contains("hunter2"));
        assert_eq!(
            inline.imap[0].password.as_ref().unwrap().expose(),
            "hunter2"
        );
    }

    #[test]
    fn auth_and_token_command() {
        let base = "[[imap]]\nname='m'\nhost='h'\nusername='u'\n";
        let check = |extra: &str| {
            Config::from_toml(&format!("{base}{extra}"))
                .unwrap()
                .check()
        };

        let login = Config::from_toml(&format!("{base}password='x'\n")).unwrap();
        assert_eq!(login.imap[0].auth, AuthMethod::Login);
        assert!(login.imap[0].token_command.is_none());
        for auth in ["xoauth2", "oauthbearer"] {
            let c = Config::from_toml(&format!("{base}auth='{auth}'\ntoken_command='cat /t'\n"))
                .unwrap();
            assert!(c.check().is_ok(), "{auth}");
            assert_eq!(c.imap[0].auth.as_str(), auth);
            assert_eq!(c.imap[0].token_command.as_deref(), Some("cat /t"));

            let e = check(&format!("auth='{auth}'\n")).unwrap_err();
            assert!(
                e.contains("\"m\"") && e.contains("needs token_command"),
                "{e}"
            );
            for key in ["password='x'", "password_env='V'", "password_command='c'"] {
                let e = check(&format!("auth='{auth}'\ntoken_command='c'\n{key}\n")).unwrap_err();
                let key = key.split('=').next().unwrap();
                assert!(
                    e.contains(&format!("{key} cannot be used with auth = \"{auth}\"")),
                    "{e}"
                );
            }
            let e = check(&format!("auth='{auth}'\ntoken_command=' '\n")).unwrap_err();
            assert!(e.contains("token_command is empty"), "{e}");
        }
        let e = check("password='x'\ntoken_command='c'\n").unwrap_err();
        assert!(e.contains("token_command is only used with"), "{e}");
        assert!(check("").unwrap_err().contains("set one of"));
        assert!(
            Config::from_toml(&format!("{base}auth='plain'\npassword='x'\n"))
                .unwrap_err()
                .contains("line 5")
        );
    }

    #[test]
    fn invalid_config_names_the_line_of_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::load(&path, true).unwrap_err().to_string()
        };
        let first = "[[imap]]\nname='a'\nhost='h'\nusername='u'\npassword='x'\n\n";
        let e = load(&format!(
            "{first}[[imap]]\nname='m'\nhost='h'\nusername='u'\nauth='xoauth2'\n\
             token_command='c'\npassword_file='/etc/passwd'\n"
        ));
        assert!(
            e.contains("line 13: account \"m\": password_file cannot be used"),
            "{e}"
        );
        let e = load(&format!(
            "{first}[[imap]]\nname='m'\nhost='h'\nusername='u'\nauth='oauthbearer'\n"
        ));
        assert!(
            e.contains("line 11: account \"m\": auth = \"oauthbearer\" needs token_command"),
            "{e}"
        );
        let e = load("[limits]\nmax_nesting = 0\n");
        assert!(!e.contains("line"), "{e}");
    }

    #[test]
    fn watch_durations() {
        let base = "[[imap]]\nname='a'\nhost='h'\nusername='u'\npassword_env='PW'\n";
        let c = Config::from_toml(base).unwrap();
        assert_eq!(c.imap[0].idle_timeout, Duration::from_secs(1500));
        assert_eq!(c.imap[0].poll_interval, Duration::from_secs(300));
        let c =
            Config::from_toml(&format!("{base}idle_timeout='10m'\npoll_interval=45\n")).unwrap();
        assert!(c.check().is_ok());
        assert_eq!(c.imap[0].idle_timeout, Duration::from_secs(600));
        assert_eq!(c.imap[0].poll_interval, Duration::from_secs(45));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration(" 90s "), Ok(Duration::from_secs(90)));
        for bad in ["", "m", "10", "10d", "-1m", "1.5m", "ten m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        let e = Config::from_toml(&format!("{base}idle_timeout='soon'\n")).unwrap_err();
        assert!(e.contains("line 6") && e.contains("90s, 25m or 1h"), "{e}");
        assert!(Config::from_toml(&format!("{base}poll_interval=-5\n")).is_err());
        let long = Config::from_toml(&format!("{base}idle_timeout='30m'\n")).unwrap();
        assert!(long.check().unwrap_err().contains("29m"));
        let zero = Config::from_toml(&format!("{base}poll_interval='0s'\n")).unwrap();
        assert!(zero.check().unwrap_err().contains("poll_interval"));
    }
}
