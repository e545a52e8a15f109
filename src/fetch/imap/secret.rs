//! The account password or OAuth2 access token: where it comes from, and a
//! wrapper that keeps it out of logs.

use super::FetchError;
use crate::config::{AuthMethod, ImapAccount};
use std::io::Read;
use std::process::{Command, Stdio};

/// A password or an access token. `Debug` prints `***`; there is no
/// `Display`. Read it with [`Secret::expose`] only where it is sent to the
/// server.
pub struct Secret(String);

impl Secret {
    /// Wrap a password.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Drop for Secret {
    /// Best effort: overwrite the bytes we own. Copies made elsewhere (the
    /// LOGIN command line inside async-imap, TLS buffers) are not reached.
    fn drop(&mut self) {
        zero(std::mem::take(&mut self.0).into_bytes());
    }
}

/// The password of `account`, from whichever of `password`, `password_file`,
/// `password_env` or `password_command` is set (the config check makes sure
/// exactly one is; if several are, the first in that order wins).
///
/// `password_file`: its first line, without the line end. `password_command`:
/// run with `sh -c`, stdin closed, stderr passed through; the first line of its
/// standard output; a non-zero exit is an error. Errors name the account and
/// the source, never the password or the command's output.
pub fn resolve_password(account: &ImapAccount) -> Result<Secret, FetchError> {
    let err = |message: String| FetchError::Password {
        account: account.name.clone(),
        message,
    };
    let secret = if let Some(p) = &account.password {
        p.expose().to_string()
    } else if let Some(path) = &account.password_file {
        let text = std::fs::read(path)
            .map_err(|e| err(format!("cannot read password_file {}: {e}", path.display())))?;
        let text = String::from_utf8(text).map_err(|_| {
            err(format!(
                "password_file {} is not valid UTF-8",
                path.display()
            ))
        })?;
        let line = first_line(&text);
        drop(Secret(text));
        line
    } else if let Some(var) = &account.password_env {
        match std::env::var(var) {
            Ok(v) => v,
            Err(std::env::VarError::NotPresent) => {
                return Err(err(format!("environment variable {var} is not set")))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(err(format!(
                    "environment variable {var} is not valid UTF-8"
                )))
            }
        }
    } else if let Some(cmd) = &account.password_command {
        run_command("password_command", cmd).map_err(err)?
    } else {
        return Err(err("no password configured".into()));
    };
    if secret.is_empty() {
        return Err(err(format!(
            "the password from {} is empty",
            source_name(account)
        )));
    }
    Ok(Secret(secret))
}

fn source_name(account: &ImapAccount) -> &'static str {
    if account.password.is_some() {
        "password"
    } else if account.password_file.is_some() {
        "password_file"
    } else if account.password_env.is_some() {
        "password_env"
    } else {
        "password_command"
    }
}

/// The first line of `text`, without `\n` or `\r\n`.
fn first_line(text: &str) -> String {
    let line = text.split('\n').next().unwrap_or("");
    line.strip_suffix('\r').unwrap_or(line).to_string()
}

/// What `account` logs in with: its password for `auth = "login"`, else its
/// OAuth2 access token ([`resolve_password`], [`resolve_token`]).
pub fn resolve_secret(account: &ImapAccount) -> Result<Secret, FetchError> {
    match account.auth {
        AuthMethod::Login => resolve_password(account),
        AuthMethod::Xoauth2 | AuthMethod::Oauthbearer => resolve_token(account),
    }
}

/// The OAuth2 access token of `account` (`auth = "xoauth2"` or
/// `"oauthbearer"`): the first line of the standard output of
/// `token_command`, run like `password_command` (`sh -c`, stdin closed,
/// stderr passed through, killed with everything it started after 60 s, a
/// non-zero exit is an error), with surrounding whitespace removed (a token
/// has none). It is run on every call, so an expired token is never reused.
/// Errors name the account and `token_command`, never the output.
pub fn resolve_token(account: &ImapAccount) -> Result<Secret, FetchError> {
    let err = |message: String| FetchError::Token {
        account: account.name.clone(),
        message,
    };
    let Some(cmd) = &account.token_command else {
        return Err(err(format!(
            "auth = {:?} needs token_command",
            account.auth.as_str()
        )));
    };
    let line = Secret(run_command("token_command", cmd).map_err(err)?);
    let token = line.expose().trim();
    if token.is_empty() {
        return Err(err(
            "token_command printed no token (its first line is empty)".into(),
        ));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(err(
            "the first line of token_command's output contains spaces or control characters; an access token has none"
                .into(),
        ));
    }
    Ok(Secret(token.to_string()))
}

/// How long `password_command` or `token_command` may take.
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Run the command (`key` names it in errors: `password_command` or
/// `token_command`), return the first line of its stdout. The error message
/// never contains the command's output (it may be, or contain, the secret).
fn run_command(key: &str, cmd: &str) -> Result<String, String> {
    run_command_within(key, cmd, COMMAND_TIMEOUT)
}

fn run_command_within(
    key: &str,
    cmd: &str,
    timeout: std::time::Duration,
) -> Result<String, String> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own process group, so that on a timeout everything it started goes too.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {key}: {e}"))?;
    // Read in a thread so that a command that never ends (a GPG agent waiting
    // for a passphrase under cron), or leaves a child holding its output open,
    // cannot hang the run: the whole group is killed after `timeout`.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut s) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let r = s.read_to_end(&mut out);
            let _ = tx.send((out, r));
        });
    }
    let deadline = std::time::Instant::now() + timeout;
    let give_up = |child: &mut std::process::Child| {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = child.kill();
        let _ = child.wait();
        format!(
            "{key} did not finish within {} s; killed it",
            timeout.as_secs()
        )
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Ok(None) => return Err(give_up(&mut child)),
            Err(e) => return Err(format!("cannot wait for {key}: {e}")),
        }
    };
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    let (out, read) = match rx.recv_timeout(left) {
        Ok((out, r)) => (out, r.map(|_| ())),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return Err(give_up(&mut child)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => (Vec::new(), Ok(())),
    };
    if !status.success() {
        zero(out);
        return Err(match status.code() {
            Some(c) => format!("{key} exited with status {c}"),
            None => format!("{key} was killed by a signal"),
        });
    }
    if let Err(e) = read {
        zero(out);
        return Err(format!("cannot read the output of {key}: {e}"));
    }
    match String::from_utf8(out) {
        Ok(s) => {
            let line = first_line(&s);
            drop(Secret(s));
            Ok(line)
        }
        Err(e) => {
            zero(e.into_bytes());
            Err(format!("the output of {key} is not valid UTF-8"))
        }
    }
}

pub(super) fn zero(mut bytes: Vec<u8>) {
    bytes.iter_mut().for_each(|b| *b = 0);
    std::hint::black_box(&bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hanging_password_command_is_killed() {
        let t = std::time::Instant::now();
        let e = run_command_within(
            "token_command",
            "sleep 30",
            std::time::Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(e.contains("token_command did not finish"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(
            run_command_within(
                "password_command",
                "printf 'pw\\nx'",
                std::time::Duration::from_secs(10)
            )
            .unwrap(),
            "pw"
        );
    }

    #[test]
    fn first_line_strips_line_ends() {
        assert_eq!(first_line("pw\n"), "pw");
        assert_eq!(first_line("pw\r\nmore\n"), "pw");
        assert_eq!(first_line(" p w "), " p w ");
        assert_eq!(first_line(""), "");
    }

    #[test]
    fn debug_hides() {
        assert_eq!(format!("{:?}", Secret::new("hunter2".into())), "***");
    }
}
