//! NTLM on a WinRM connection: its three messages (negotiate, challenge,
//! authenticate), and over plain HTTP every body sealed in MS-WSMV's
//! `multipart/encrypted` envelope (2.2.9.1.1) and unsealed on its way back.

use super::{Error, Result, Session, PROTOCOL};
use base64::Engine;
use sspi::{
    AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, DataRepresentation,
    EncryptionFlags, Ntlm, SecurityBuffer, SecurityBufferRef, SecurityStatus, Sspi, SspiImpl,
    Username,
};

const BOUNDARY: &str = "--Encrypted Boundary";

impl Session {
    /// NTLM's three messages on this connection, with empty bodies (as pywinrm does
    /// before it seals): negotiate → challenge (401) → authenticate → 200.
    pub(super) fn authenticate_ntlm(
        &mut self,
        user: &str,
        domain: Option<&str>,
        password: &str,
    ) -> Result<()> {
        let mut ntlm = Ntlm::new();
        let identity = AuthIdentity {
            username: Username::new(user, domain).map_err(|e| Error::Protocol(e.to_string()))?,
            password: password.to_string().into(),
        };
        let mut creds = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .map_err(|e| Error::Protocol(format!("NTLM: {e}")))?;
        let target = format!("HTTP/{}", self.host_header.split(':').next().unwrap_or(""));
        let flags = ClientRequestFlags::CONFIDENTIALITY
            | ClientRequestFlags::INTEGRITY
            | ClientRequestFlags::ALLOCATE_MEMORY;
        let mut input: Option<Vec<u8>> = None;
        loop {
            let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
            let mut in_bufs = input
                .take()
                .map(|t| vec![SecurityBuffer::new(t, BufferType::Token)]);
            let mut builder = ntlm
                .initialize_security_context()
                .with_credentials_handle(&mut creds.credentials_handle)
                .with_context_requirements(flags)
                .with_target_data_representation(DataRepresentation::Native)
                .with_target_name(&target)
                .with_output(&mut output);
            if let Some(b) = in_bufs.as_mut() {
                builder = builder.with_input(b);
            }
            let status = ntlm
                .initialize_security_context_impl(&mut builder)
                .and_then(|mut g| g.resolve_to_result())
                .map_err(|e| Error::Protocol(format!("NTLM: {e}")))?
                .status;
            if matches!(
                status,
                SecurityStatus::CompleteAndContinue | SecurityStatus::CompleteNeeded
            ) {
                ntlm.complete_auth_token(&mut output)
                    .map_err(|e| Error::Protocol(format!("NTLM: {e}")))?;
            }
            let token = base64::engine::general_purpose::STANDARD.encode(&output[0].buffer);
            self.write_request(
                &[
                    ("Authorization", format!("Negotiate {token}")),
                    ("Content-Type", "application/soap+xml;charset=UTF-8".into()),
                ],
                b"",
            )?;
            let r = self.read_response()?;
            let more = matches!(
                status,
                SecurityStatus::ContinueNeeded | SecurityStatus::CompleteAndContinue
            );
            if r.status == 401 {
                let challenge = r
                    .header("WWW-Authenticate")
                    .and_then(|v| {
                        v.split(',').map(str::trim).find_map(|p| {
                            p.strip_prefix("Negotiate ")
                                .or_else(|| p.strip_prefix("NTLM "))
                        })
                    })
                    .map(str::to_string);
                match challenge {
                    Some(c) if more => {
                        input = Some(
                            base64::engine::general_purpose::STANDARD
                                .decode(c.trim())
                                .map_err(|_| {
                                    Error::Protocol("the NTLM challenge is not base64".into())
                                })?,
                        );
                        continue;
                    }
                    _ => {
                        return Err(Error::Refused(
                            "the server refused the user name or password (HTTP 401 after NTLM)"
                                .into(),
                        ))
                    }
                }
            }
            if !(200..300).contains(&r.status) {
                return Err(Error::Protocol(format!(
                    "the server answered HTTP {} to NTLM authentication",
                    r.status
                )));
            }
            if more {
                return Err(Error::Protocol(
                    "the server accepted NTLM before it was complete".into(),
                ));
            }
            self.ntlm = Some(ntlm);
            return Ok(());
        }
    }
}

/// The `multipart/encrypted` body for `message`, as MS-WSMV 2.2.9.1.1 frames it.
pub fn frame(message_len: usize, signature: &[u8], sealed: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{BOUNDARY}\r\n\tContent-Type: {PROTOCOL}\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={message_len}\r\n{BOUNDARY}\r\n\tContent-Type: application/octet-stream\r\n"
    )
    .into_bytes();
    out.extend_from_slice(&(signature.len() as u32).to_le_bytes());
    out.extend_from_slice(signature);
    out.extend_from_slice(sealed);
    out.extend_from_slice(format!("{BOUNDARY}--\r\n").as_bytes());
    out
}

/// One part of a `multipart/encrypted` body: (declared length, signature, sealed).
pub type Part = (usize, Vec<u8>, Vec<u8>);

/// The parts of a `multipart/encrypted` body.
pub fn unframe(body: &[u8]) -> Result<Vec<Part>> {
    let bad = |what: &str| Error::Protocol(format!("bad encrypted message: {what}"));
    let sep = format!("{BOUNDARY}\r\n").into_bytes();
    let end = format!("{BOUNDARY}--\r\n").into_bytes();
    let mut body = body.to_vec();
    if body.ends_with(&end) {
        body.truncate(body.len() - end.len());
    }
    let mut parts = Vec::new();
    let mut rest: &[u8] = &body;
    while !rest.is_empty() {
        let p = rest
            .strip_prefix(sep.as_slice())
            .ok_or_else(|| bad("no boundary"))?;
        let next = p
            .windows(sep.len())
            .position(|w| w == sep.as_slice())
            .ok_or_else(|| bad("no second boundary"))?;
        let head = String::from_utf8_lossy(&p[..next]).into_owned();
        let len: usize = head
            .split("Length=")
            .nth(1)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| bad("no Length"))?;
        let data = &p[next + sep.len()..];
        let marker = b"\tContent-Type: application/octet-stream\r\n";
        let data = data
            .strip_prefix(marker.as_slice())
            .ok_or_else(|| bad("no octet-stream part"))?;
        if data.len() < 4 {
            return Err(bad("too short"));
        }
        let sig_len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        // The sealed bytes run to the next part, if any.
        let payload = &data[4..];
        let stop = payload
            .windows(sep.len())
            .position(|w| w == sep.as_slice())
            .unwrap_or(payload.len());
        if stop < sig_len {
            return Err(bad("signature longer than the part"));
        }
        parts.push((
            len,
            payload[..sig_len].to_vec(),
            payload[sig_len..stop].to_vec(),
        ));
        rest = &payload[stop..];
    }
    Ok(parts)
}

pub(super) fn seal(ntlm: &mut Ntlm, message: &[u8]) -> Result<Vec<u8>> {
    let mut signature = vec![0u8; 16];
    let mut data = message.to_vec();
    {
        let mut bufs = [
            SecurityBufferRef::token_buf(&mut signature),
            SecurityBufferRef::data_buf(&mut data),
        ];
        ntlm.encrypt_message(EncryptionFlags::empty(), &mut bufs)
            .map_err(|e| Error::Protocol(format!("sealing: {e}")))?;
    }
    Ok(frame(message.len(), &signature, &data))
}

pub(super) fn unseal(ntlm: &mut Ntlm, body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (len, mut signature, mut sealed) in unframe(body)? {
        let mut bufs = [
            SecurityBufferRef::token_buf(&mut signature),
            SecurityBufferRef::data_buf(&mut sealed),
        ];
        ntlm.decrypt_message(&mut bufs).map_err(|e| {
            Error::Protocol(format!(
                "the server's sealed message does not verify ({e}); someone may be in between"
            ))
        })?;
        let plain = bufs[1].data().to_vec();
        if plain.len() != len {
            return Err(Error::Protocol(
                "the server's sealed message has the wrong length; someone may be in between"
                    .into(),
            ));
        }
        out.extend(plain);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same message framed by pywinrm 0.5.0's own `Encryption._encrypt_message`
    /// (with a stand-in sealer: each byte XOR 0x5a, signature 16 x 'S'), byte for byte.
    #[test]
    fn framing_matches_pywinrm() {
        let pywinrm = "2d2d456e6372797074656420426f756e646172790d0a09436f6e74656e742d547970653a206170706c69636174696f6e2f485454502d53504e45474f2d73657373696f6e2d656e637279707465640d0a094f726967696e616c436f6e74656e743a20747970653d6170706c69636174696f6e2f736f61702b786d6c3b636861727365743d5554462d383b4c656e6774683d33300d0a2d2d456e6372797074656420426f756e646172790d0a09436f6e74656e742d547970653a206170706c69636174696f6e2f6f637465742d73747265616d0d0a10000000535353535353535353535353535353536629601f342c3f36352a3f64323f363635667529601f342c3f36352a3f642d2d456e6372797074656420426f756e646172792d2d0d0a";
        let want: Vec<u8> = (0..pywinrm.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&pywinrm[i..i + 2], 16).unwrap())
            .collect();
        let msg = b"<s:Envelope>hello</s:Envelope>";
        let sealed: Vec<u8> = msg.iter().map(|b| b ^ 0x5a).collect();
        assert_eq!(frame(msg.len(), &[b'S'; 16], &sealed), want);
        assert_eq!(
            unframe(&want).unwrap(),
            vec![(msg.len(), vec![b'S'; 16], sealed)]
        );
    }

    #[test]
    fn framing_round_trips() {
        let body = frame(5, &[1u8; 16], b"\x09\x08\x07\x06\x05");
        let parts = unframe(&body).unwrap();
        assert_eq!(
            parts,
            vec![(5, vec![1u8; 16], b"\x09\x08\x07\x06\x05".to_vec())]
        );
    }
}
