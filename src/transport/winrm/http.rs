//! HTTP for WinRM: one kept-alive connection (NTLM authenticates a TCP connection,
//! not a request), over TLS (rustls) or plain TCP; NTLMv2 from the `sspi` crate;
//! over plain HTTP every body sealed in MS-WSMV's `multipart/encrypted` envelope
//! (2.2.9.1.1), never sent in clear; Basic only over HTTPS. Here: the session and its
//! requests; NTLM and the sealing, and the TLS trust, each have a file.

mod ntlm;
mod tls;

use base64::Engine;
use ntlm::{seal, unseal};
use sspi::Ntlm;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;
use tls::tls_config;

pub const PROTOCOL: &str = "application/HTTP-SPNEGO-session-encrypted";

#[derive(Clone)]
pub enum Auth {
    /// NTLMv2; `domain` from `DOMAIN\user`.
    Ntlm {
        user: String,
        domain: Option<String>,
        password: String,
    },
    /// Only over HTTPS.
    Basic { user: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Ntlm { user, domain, .. } => write!(
                f,
                "NTLM as {}{user} / (sensitive value)",
                domain
                    .as_deref()
                    .map(|d| format!("{d}\\"))
                    .unwrap_or_default()
            ),
            Auth::Basic { user, .. } => write!(f, "Basic as {user} / (sensitive value)"),
        }
    }
}

/// How the server's certificate is checked over HTTPS.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The system's roots, plus the CA certificates (PEM) of `ca_file` when given.
    Verify { ca_file: Option<std::path::PathBuf> },
    /// No check at all: only with the inventory's explicit per-host flag.
    Insecure,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

/// Why a request failed, for the caller to phrase.
#[derive(Debug)]
pub enum Error {
    Io(String),
    /// The server refused the credentials (401 after the handshake).
    Refused(String),
    Protocol(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(s) | Error::Refused(s) | Error::Protocol(s) => f.write_str(s),
        }
    }
}

type Result<T> = std::result::Result<T, Error>;

/// An HTTP answer.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One authenticated connection to a WinRM listener.
pub struct Session {
    stream: Stream,
    host_header: String,
    path: String,
    auth: Auth,
    https: bool,
    /// The NTLM context once authenticated: seals and unseals over plain HTTP.
    ntlm: Option<Ntlm>,
    /// What was sent and received, for golden transcripts (bodies before sealing).
    pub trace: Option<Vec<String>>,
}

fn io(e: impl std::fmt::Display) -> Error {
    Error::Io(e.to_string())
}

impl Session {
    /// Connects (and, over HTTPS, shakes hands with TLS); authentication happens on
    /// the first request.
    pub fn connect(
        tcp: TcpStream,
        host: &str,
        port: u16,
        https: bool,
        trust: &Trust,
        auth: Auth,
    ) -> Result<Session> {
        if !https && matches!(auth, Auth::Basic { .. }) {
            return Err(Error::Protocol(
                "Basic authentication would send the password in clear over HTTP: use HTTPS (port 5986) or NTLM".into(),
            ));
        }
        tcp.set_nodelay(true).ok();
        let stream = if https {
            let config = tls_config(trust)?;
            let name = rustls_pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| Error::Io(format!("{host} is not a name TLS can check: {e}")))?;
            let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(io)?;
            let mut s = rustls::StreamOwned::new(conn, tcp);
            // Handshake now, so a certificate problem is reported as one.
            while s.conn.is_handshaking() {
                s.conn
                    .complete_io(&mut s.sock)
                    .map_err(|e| Error::Io(format!("TLS handshake failed: {e}")))?;
            }
            Stream::Tls(Box::new(s))
        } else {
            Stream::Plain(tcp)
        };
        Ok(Session {
            stream,
            host_header: format!("{host}:{port}"),
            path: "/wsman".into(),
            auth,
            https,
            ntlm: None,
            trace: None,
        })
    }

    pub fn set_timeout(&self, t: Duration) {
        self.stream.tcp().set_read_timeout(Some(t)).ok();
        self.stream.tcp().set_write_timeout(Some(t)).ok();
    }

    fn write_request(&mut self, headers: &[(&str, String)], body: &[u8]) -> Result<()> {
        let mut req = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: warren\r\nConnection: Keep-Alive\r\nContent-Length: {}\r\n",
            self.path,
            self.host_header,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).map_err(io)?;
        self.stream.flush().map_err(io)
    }

    fn read_response(&mut self) -> Result<Response> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16384];
        let (status, headers, head_len) = loop {
            let n = self.stream.read(&mut chunk).map_err(io)?;
            if n == 0 {
                return Err(Error::Io("the server closed the connection".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut hs);
            match resp.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let headers: Vec<(String, String)> = resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    break (resp.code.unwrap_or(0), headers, len);
                }
                Ok(httparse::Status::Partial) => continue,
                Err(e) => return Err(Error::Protocol(format!("not an HTTP answer ({e})"))),
            }
        };
        let mut rest = buf.split_off(head_len);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let body = if header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            self.read_chunked(rest)?
        } else {
            let len: usize = header("Content-Length")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while rest.len() < len {
                let n = self.stream.read(&mut chunk).map_err(io)?;
                if n == 0 {
                    return Err(Error::Io(
                        "the server closed the connection mid-answer".into(),
                    ));
                }
                rest.extend_from_slice(&chunk[..n]);
            }
            rest.truncate(len);
            rest
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn read_chunked(&mut self, mut buf: Vec<u8>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 16384];
        loop {
            // A size line, then that many bytes and CRLF.
            let line_end = loop {
                if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                let n = self.stream.read(&mut chunk).map_err(io)?;
                if n == 0 {
                    return Err(Error::Io(
                        "the server closed the connection mid-answer".into(),
                    ));
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| Error::Protocol(format!("bad chunk size {size_text:?}")))?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                let n = self.stream.read(&mut chunk).map_err(io)?;
                if n == 0 {
                    return Err(Error::Io(
                        "the server closed the connection mid-answer".into(),
                    ));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            if size == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
        }
    }

    /// Posts one SOAP message; returns the HTTP status and the (unsealed) body.
    pub fn post(&mut self, xml: &str) -> Result<(u16, String)> {
        if let Some(t) = self.trace.as_mut() {
            t.push(format!("POST {}\n{xml}", self.path));
        }
        if self.ntlm.is_none() {
            if let Auth::Ntlm {
                user,
                domain,
                password,
            } = self.auth.clone()
            {
                self.authenticate_ntlm(&user, domain.as_deref(), &password)?;
            }
        }
        let mut headers = Vec::new();
        let body: Vec<u8> = if self.https {
            if let Auth::Basic { user, password } = &self.auth {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                headers.push(("Authorization", format!("Basic {token}")));
            }
            headers.push(("Content-Type", "application/soap+xml;charset=UTF-8".into()));
            xml.as_bytes().to_vec()
        } else {
            let ntlm = self
                .ntlm
                .as_mut()
                .ok_or_else(|| Error::Protocol("no NTLM context to seal with".into()))?;
            headers.push((
                "Content-Type",
                format!(
                    "multipart/encrypted;protocol=\"{PROTOCOL}\";boundary=\"Encrypted Boundary\""
                ),
            ));
            seal(ntlm, xml.as_bytes())?
        };
        self.write_request(&headers, &body)?;
        let r = self.read_response()?;
        if r.status == 401 {
            return Err(Error::Refused(
                "the server refused the user name or password (HTTP 401)".into(),
            ));
        }
        let sealed = r
            .header("Content-Type")
            .is_some_and(|v| v.contains(PROTOCOL));
        let text = if sealed {
            let ntlm = self
                .ntlm
                .as_mut()
                .ok_or_else(|| Error::Protocol("a sealed answer without NTLM".into()))?;
            unseal(ntlm, &r.body)?
        } else if !self.https && !r.body.is_empty() {
            return Err(Error::Protocol(format!(
                "the server answered HTTP {} without sealing its message over plain HTTP; warren does not read unsealed messages",
                r.status
            )));
        } else {
            r.body
        };
        let text = String::from_utf8_lossy(&text).into_owned();
        if let Some(t) = self.trace.as_mut() {
            t.push(format!("HTTP {}\n{text}", r.status));
        }
        Ok((r.status, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_prints() {
        let a = Auth::Ntlm {
            user: "u".into(),
            domain: Some("D".into()),
            password: "hunter2".into(),
        };
        assert_eq!(format!("{a:?}"), "NTLM as D\\u / (sensitive value)");
    }
}
