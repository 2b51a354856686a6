//! A host's TLS files as the inventory names them, on the operator's machine (warren
//! puts them on the host; the `files` line says whether the host has them): the key
//! is the certificate's, the chain reaches the CA, the dates hold now and in a month,
//! and the certificate names the host. Checked with rustls' own verifier, the one
//! warren's WinRM client trusts.

use super::Lines;
use crate::inventory::Host;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A certificate that expires sooner than this gets a warning.
const SOON: Duration = Duration::from_secs(30 * 24 * 3600);

pub(super) fn checks(l: &mut Lines, h: &Host) {
    let Some(tls) = &h.tls else {
        return;
    };
    match check(h, tls) {
        Ok(Ok(found)) => l.ok("tls", &h.name, found),
        Ok(Err((found, fix))) => l.warn("tls", &h.name, found, fix),
        Err((found, fix)) => l.fail("tls", &h.name, found, fix),
    }
}

type Problem = (String, String);

fn check(h: &Host, tls: &crate::inventory::Tls) -> Result<Result<String, Problem>, Problem> {
    let unreadable = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        (
            format!("{what} {} cannot be read: {e}", path.display()),
            format!(
                "give a PEM file at {} (tls.{what} in the inventory)",
                path.display()
            ),
        )
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| unreadable("cert", &tls.cert, &e))?;
    let Some(leaf) = certs.first() else {
        return Err(unreadable("cert", &tls.cert, &"no certificate in it"));
    };
    let key =
        PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| unreadable("key", &tls.key, &e))?;
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.ca)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| unreadable("ca", &tls.ca, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing = provider.key_provider.load_private_key(key).map_err(|e| {
        (
            format!(
                "the key {} is not a private key rustls can use: {e}",
                tls.key.display()
            ),
            "give the certificate's private key in PEM (PKCS#8, PKCS#1 or SEC1)".to_string(),
        )
    })?;
    rustls::sign::CertifiedKey::new(certs.clone(), signing)
        .keys_match()
        .map_err(|_| {
            (
                format!("the key {} is not the key of the certificate {}", tls.key.display(), tls.cert.display()),
                "give the key the certificate was issued for (openssl x509 -noout -pubkey and openssl pkey -pubout print the same for a pair)".to_string(),
            )
        })?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(|e| {
            (
                format!(
                    "the CA file {} holds a certificate rustls refuses: {e}",
                    tls.ca.display()
                ),
                "give the CA certificate in PEM".to_string(),
            )
        })?;
    }
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| {
                (
                    format!("the CA file {}: {e}", tls.ca.display()),
                    "give the CA certificate in PEM".to_string(),
                )
            })?;
    let at = |t: SystemTime| {
        UnixTime::since_unix_epoch(t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default())
    };
    let verify = |name: &str, t: SystemTime| {
        let name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        verifier
            .verify_server_cert(leaf, &certs[1..], &name, &[], at(t))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let now = SystemTime::now();
    let by = match (verify(&h.name, now), verify(&h.address, now)) {
        (Ok(()), _) => h.name.clone(),
        (_, Ok(())) => h.address.clone(),
        (Err(e), _) => {
            return Err((
                format!(
                    "the certificate {} does not verify for {}: {e}",
                    tls.cert.display(),
                    h.name
                ),
                format!(
                    "issue a certificate from the CA in {} that names {} (or {}) and is valid now",
                    tls.ca.display(),
                    h.name,
                    h.address
                ),
            ))
        }
    };
    if let Err(e) = verify(&by, now + SOON) {
        return Ok(Err((
            format!(
                "the certificate {} verifies for {by} now, but not in 30 days: {e}",
                tls.cert.display()
            ),
            "issue a new certificate before it expires, then run `warren apply`".to_string(),
        )));
    }
    Ok(Ok(format!(
        "{}: its key matches, the chain reaches the CA, valid for {by} now and in 30 days",
        tls.cert.display()
    )))
}
