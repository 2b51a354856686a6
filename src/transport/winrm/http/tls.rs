//! HTTPS to a WinRM listener: which certificates are trusted (the system's roots and
//! the inventory's CA file), or, with the inventory's explicit flag, none.

use super::{io, Error, Result, Trust};
use std::sync::Arc;

pub(super) fn tls_config(trust: &Trust) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io)?;
    match trust {
        Trust::Insecure => Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCheck(provider)))
            .with_no_client_auth()),
        Trust::Verify { ca_file } => {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for c in native.certs {
                roots.add(c).ok();
            }
            if let Some(f) = ca_file {
                use rustls_pki_types::pem::PemObject;
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(f).map_err(|e| {
                    Error::Io(format!("cannot read the CA file {}: {e}", f.display()))
                })?;
                for c in certs {
                    let c = c.map_err(|e| {
                        Error::Io(format!("the CA file {} is not PEM: {e}", f.display()))
                    })?;
                    roots.add(c).map_err(|e| {
                        Error::Io(format!(
                            "the CA file {} holds a bad certificate: {e}",
                            f.display()
                        ))
                    })?;
                }
            }
            Ok(builder.with_root_certificates(roots).with_no_client_auth())
        }
    }
}

/// The verifier for `Trust::Insecure`: accepts any certificate, still checks
/// the handshake's signatures so the session is at least encrypted.
#[derive(Debug)]
struct NoCheck(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
