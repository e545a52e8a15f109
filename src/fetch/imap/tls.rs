//! TLS client configuration: rustls with the ring provider, system roots plus
//! an optional private CA, or (tls_verify = false) no verification at all.

use super::{warn, FetchError};
use crate::config::ImapAccount;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;
use tokio_rustls::rustls::{
    self,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// The rustls client configuration for `account`.
pub(crate) fn client_config(account: &ImapAccount) -> Result<Arc<ClientConfig>, FetchError> {
    let tls_err = |message: String| FetchError::Tls {
        account: account.name.clone(),
        host: account.host.clone(),
        message,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(format!("cannot set up TLS: {e}")))?;
    let config = if account.tls_verify {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = &account.ca_file {
            let bad = |e: String| tls_err(format!("ca_file {}: {e}", path.display()));
            let mut n = 0;
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
                let cert = cert.map_err(|e| bad(e.to_string()))?;
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
                n += 1;
            }
            if n == 0 {
                return Err(bad("no PEM certificates in it".into()));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        warn(&format!(
            "account {}: tls_verify = false: the certificate of {} is NOT checked; \
             anyone between here and there can read the password and the mail",
            account.name, account.host
        ));
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The name the certificate must match: `host` without IPv6 brackets.
pub(crate) fn server_name(account: &ImapAccount) -> Result<ServerName<'static>, FetchError> {
    let host = account.host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| FetchError::Tls {
        account: account.name.clone(),
        host: account.host.clone(),
        message: format!("not a valid server name: {e}"),
    })
}

/// `tls_verify = false`: any certificate is accepted. Handshake signatures are
/// still checked (so the peer holds the key of the certificate it sent).
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS handshake failure as one line: the rustls reason if there is one.
pub(crate) fn describe(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(r) => r.to_string(),
        None => e.to_string(),
    }
}
