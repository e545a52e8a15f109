//! Logging in with an OAuth2 access token: SASL XOAUTH2 (Google's and
//! Microsoft's mechanism) and OAUTHBEARER (RFC 7628), through async-imap's
//! [`Client::authenticate`].
//!
//! async-imap sends `AUTHENTICATE <mechanism>` (no SASL-IR) and calls
//! [`Authenticator::process`] for every `+` continuation, sending back what it
//! returns, base64-encoded, until the tagged answer arrives. The first `+` is
//! the empty prompt for the initial response, which carries the token. A
//! server that refuses the token does not say NO at once: it sends a second
//! `+` with a base64 JSON error (`{"status":"invalid_token",...}`) and waits
//! for the client to acknowledge it, with an empty response for XOAUTH2 and a
//! single `^A` for OAUTHBEARER (RFC 7628 section 3.2.3); only then comes the
//! tagged NO. The JSON is kept for the error message. All of it runs under the
//! per-operation timeout, so a server that keeps challenging cannot hang the
//! run.

use super::{one_line, server_text, Conn, Ctx, FetchError, Secret};
use crate::config::AuthMethod;
use async_imap::error::Error as ImapError;
use async_imap::{Authenticator, Client, Session};
use std::sync::Mutex;
use std::time::Duration;

/// Log in with `token` using the account's `auth` mechanism. A refusal is
/// [`FetchError::Login`] naming the account, user and mechanism, with the
/// server's text and the status from its error challenge; never the token.
pub(super) async fn authenticate(
    ctx: &Ctx<'_>,
    client: Client<Conn>,
    token: &Secret,
) -> Result<Session<Conn>, FetchError> {
    let account = ctx.account;
    let mechanism = account.auth;
    let name = mechanism_name(mechanism)
        .ok_or_else(|| FetchError::Other("SASL login asked for auth = \"login\"".into()))?;
    let refused = |message: String| FetchError::Login {
        account: ctx.name(),
        host: ctx.host(),
        message: scrub(
            &one_line(&format!("user {} ({name}): {message}", account.username)),
            token,
        ),
    };
    if account.username.chars().any(char::is_control) {
        return Err(refused(format!(
            "the username contains a control character, which {name} cannot send"
        )));
    }
    let host = account.host.trim_start_matches('[').trim_end_matches(']');
    let initial = initial_response(
        mechanism,
        &account.username,
        host,
        account.port(),
        token.expose(),
    );
    let challenge = Mutex::new(None);
    let authenticator = OAuth {
        initial: Some(initial),
        mechanism,
        challenge: &challenge,
    };
    let what = format!("logging in with {name}");
    let result = tokio::time::timeout(ctx.timeout, client.authenticate(name, authenticator)).await;
    let error_challenge = challenge.lock().ok().and_then(|mut c| c.take());
    match result {
        Err(_) => Err(ctx.timed_out(&what)),
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, mut client))) => {
            let message = match e {
                ImapError::No(m) | ImapError::Bad(m) => server_text(&m),
                // I/O, a lost connection, a challenge that is not base64.
                e => return Err(scrub_error(ctx.imap(&what, e), token)),
            };
            // Say goodbye (servers log a dropped connection as an abort);
            // the refusal is what matters, so the outcome is ignored.
            let t = ctx.timeout.min(Duration::from_secs(2));
            let logout = client.run_command_and_check_ok("LOGOUT", None);
            let _ = tokio::time::timeout(t, logout).await;
            Err(refused(
                match error_challenge.as_deref().and_then(describe) {
                    Some(detail) => format!("{message} ({detail})"),
                    None => message,
                },
            ))
        }
    }
}

/// The SASL name of an OAuth2 mechanism.
fn mechanism_name(m: AuthMethod) -> Option<&'static str> {
    match m {
        AuthMethod::Xoauth2 => Some("XOAUTH2"),
        AuthMethod::Oauthbearer => Some("OAUTHBEARER"),
        AuthMethod::Login => None,
    }
}

/// The client's first message. XOAUTH2:
/// `user=<user>^Aauth=Bearer <token>^A^A`. OAUTHBEARER (RFC 7628): a GS2
/// header naming the user, then host, port and token:
/// `n,a=<user>,^Ahost=<host>^Aport=<port>^Aauth=Bearer <token>^A^A`.
fn initial_response(
    mechanism: AuthMethod,
    user: &str,
    host: &str,
    port: u16,
    token: &str,
) -> Zeroing {
    let s = match mechanism {
        AuthMethod::Oauthbearer => format!(
            "n,a={},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01",
            gs2_escape(user)
        ),
        _ => format!("user={user}\x01auth=Bearer {token}\x01\x01"),
    };
    Zeroing(s.into_bytes())
}

/// A GS2 `saslname` (RFC 5801): `,` and `=` written `=2C` and `=3D`.
fn gs2_escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// The client side of one exchange, for [`Client::authenticate`].
struct OAuth<'a> {
    /// Sent at the first `+`; `None` afterwards.
    initial: Option<Zeroing>,
    mechanism: AuthMethod,
    /// The last challenge after the initial response: the server's error.
    challenge: &'a Mutex<Option<Vec<u8>>>,
}

impl Authenticator for OAuth<'_> {
    type Response = Zeroing;

    fn process(&mut self, challenge: &[u8]) -> Zeroing {
        if let Some(initial) = self.initial.take() {
            return initial;
        }
        if let Ok(mut c) = self.challenge.lock() {
            *c = Some(challenge.to_vec());
        }
        match self.mechanism {
            AuthMethod::Oauthbearer => Zeroing(vec![0x01]),
            _ => Zeroing(Vec::new()),
        }
    }
}

/// Bytes overwritten when dropped: the initial response holds the token.
/// (async-imap's base64 copy of it is not reached.)
struct Zeroing(Vec<u8>);

impl AsRef<[u8]> for Zeroing {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Zeroing {
    fn drop(&mut self) {
        super::secret::zero(std::mem::take(&mut self.0));
    }
}

/// What an error challenge says, e.g. `token rejected: invalid_token` or
/// `token rejected: status 400, scope https://mail.google.com/`. `None`
/// unless it is JSON with a `status`.
fn describe(challenge: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(challenge).ok()?;
    let field = |key: &str| -> Option<String> {
        let s = match v.get(key)? {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let s: String = one_line(&s).chars().take(200).collect();
        let s = s.trim().to_string();
        (!s.is_empty()).then_some(s)
    };
    let status = field("status")?;
    let mut out = if status.bytes().all(|b| b.is_ascii_digit()) {
        format!("token rejected: status {status}")
    } else {
        format!("token rejected: {status}")
    };
    if let Some(scope) = field("scope") {
        out.push_str(&format!(", scope {scope}"));
    }
    Some(out)
}

/// A protocol error (which may quote the server) scrubbed of the token.
fn scrub_error(e: FetchError, token: &Secret) -> FetchError {
    match e {
        FetchError::Protocol {
            account,
            host,
            message,
        } => FetchError::Protocol {
            account,
            host,
            message: scrub(&message, token),
        },
        e => e,
    }
}

/// `message` with every occurrence of the token replaced by `***` (a server
/// could echo it back).
fn scrub(message: &str, token: &Secret) -> String {
    let t = token.expose();
    if t.is_empty() {
        message.to_string()
    } else {
        message.replace(t, "***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(z: &Zeroing) -> String {
        String::from_utf8(z.0.clone()).unwrap()
    }

    #[test]
    fn initial_responses() {
        assert_eq!(
            text(&initial_response(
                AuthMethod::Xoauth2,
                "dmarc@example.com",
                "imap.example.com",
                993,
                "tok.en"
            )),
            "user=dmarc@example.com\x01auth=Bearer tok.en\x01\x01"
        );
        assert_eq!(
            text(&initial_response(
                AuthMethod::Oauthbearer,
                "a,b=c@example.com",
                "imap.example.com",
                143,
                "tok"
            )),
            "n,a=a=2Cb=3Dc@example.com,\x01host=imap.example.com\x01port=143\x01auth=Bearer tok\x01\x01"
        );
    }

    #[test]
    fn challenges_after_the_first_are_acknowledged_and_kept() {
        for (mechanism, ack) in [
            (AuthMethod::Xoauth2, &b""[..]),
            (AuthMethod::Oauthbearer, &b"\x01"[..]),
        ] {
            let kept = Mutex::new(None);
            let mut a = OAuth {
                initial: Some(Zeroing(b"first".to_vec())),
                mechanism,
                challenge: &kept,
            };
            assert_eq!(a.process(b"").as_ref(), b"first");
            assert_eq!(a.process(br#"{"status":"401"}"#).as_ref(), ack);
            assert_eq!(a.process(b"again").as_ref(), ack);
            assert_eq!(kept.lock().unwrap().as_deref(), Some(&b"again"[..]));
        }
    }

    #[test]
    fn error_challenges_are_described() {
        assert_eq!(
            describe(br#"{"status":"invalid_token","scope":"","openid-configuration":""}"#)
                .as_deref(),
            Some("token rejected: invalid_token")
        );
        assert_eq!(
            describe(br#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#)
                .as_deref(),
            Some("token rejected: status 400, scope https://mail.google.com/")
        );
        assert_eq!(
            describe(b"{\"status\":\"bad\\r\\nline\"}").as_deref(),
            Some("token rejected: bad  line")
        );
        assert_eq!(describe(b"not json"), None);
        assert_eq!(describe(br#"{"error":"x"}"#), None);
    }

    #[test]
    fn scrubbed() {
        let t = Secret::new("s3cr3t-token".into());
        assert_eq!(scrub("got s3cr3t-token back", &t), "got *** back");
    }
}
