//! The command line's side of the admin API: where the running daemon answers it and with
//! which token, both from the configuration (`server.admin_listen` or `server.listen`, and
//! `server.admin_token` or `SHEETSYNC_ADMIN_TOKEN`).

use std::process::ExitCode;

use sheetsync::{Error, ErrorKind, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::Config;

/// Where the admin API answers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// A TCP address to connect to, which is also the `Host` the request names.
    Tcp(String),
    /// A Unix socket's path.
    Unix(String),
}

/// A client of a running daemon's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    endpoint: Endpoint,
    token: Option<String>,
}

impl AdminClient {
    /// The admin API the configuration describes; an error when the configuration turns it
    /// off (neither a token nor an admin listener).
    pub fn from_config(cfg: &Config) -> Result<AdminClient> {
        let s = &cfg.server;
        let endpoint = match (&s.admin_listen, &s.admin_token) {
            (Some(a), _) => match a.strip_prefix("unix:") {
                Some(path) => Endpoint::Unix(path.to_string()),
                None => Endpoint::Tcp(connectable(a)),
            },
            (None, Some(_)) => Endpoint::Tcp(connectable(&s.listen)),
            (None, None) => {
                return Err(Error::new(
                    ErrorKind::ConfigInvalid,
                    "the admin API is off in this configuration: set server.admin_token (or SHEETSYNC_ADMIN_TOKEN), or server.admin_listen, and restart the daemon",
                ))
            }
        };
        Ok(AdminClient {
            endpoint,
            token: s.admin_token.clone(),
        })
    }

    /// A client of `server.listen` without a token, for `/healthz`.
    pub fn health(cfg: &Config) -> AdminClient {
        AdminClient {
            endpoint: Endpoint::Tcp(connectable(&cfg.server.listen)),
            token: None,
        }
    }

    /// Where it connects, for messages.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp(a) => a.clone(),
            Endpoint::Unix(p) => format!("unix:{p}"),
        }
    }

    /// One request; the status and the body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String)> {
        let conn_err = |e: std::io::Error| {
            Error::new(
                ErrorKind::Connection,
                format!(
                    "cannot reach the daemon's admin API at {} (is `sheetsync run` running?): {e}",
                    self.describe()
                ),
            )
        };
        let answer = match &self.endpoint {
            Endpoint::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(conn_err)?;
                exchange(stream, &self.head(method, path, addr, body)).await
            }
            #[cfg(unix)]
            Endpoint::Unix(socket) => {
                let stream = tokio::net::UnixStream::connect(socket)
                    .await
                    .map_err(conn_err)?;
                exchange(stream, &self.head(method, path, "localhost", body)).await
            }
            #[cfg(not(unix))]
            Endpoint::Unix(_) => {
                return Err(conn_err(std::io::Error::other(
                    "Unix sockets need a Unix system",
                )))
            }
        };
        let text = answer.map_err(conn_err)?;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                Error::new(ErrorKind::Unexpected, format!("not an HTTP answer: {head}"))
            })?;
        Ok((status, body.to_string()))
    }

    /// The request's text: head, token and body.
    fn head(&self, method: &str, path: &str, host: &str, body: Option<&str>) -> String {
        let body = body.unwrap_or("");
        let auth = match &self.token {
            Some(t) => format!("Authorization: Bearer {t}\r\n"),
            None => String::new(),
        };
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// `GET path`, printed for people by `render`; an error answer is printed as it came.
    pub async fn show(&self, path: &str, render: fn(&str) -> Result<String>) -> Result<ExitCode> {
        let (status, text) = self.request("GET", path, None).await?;
        if !(200..300).contains(&status) {
            return self.print_answer(status, text);
        }
        print!("{}", render(&text)?);
        Ok(ExitCode::SUCCESS)
    }

    /// Sends a request and prints the answer as pretty JSON; exit code 1 unless it is a 2xx.
    pub async fn print(&self, method: &str, path: &str, body: Option<&str>) -> Result<ExitCode> {
        let (status, text) = self.request(method, path, body).await?;
        self.print_answer(status, text)
    }

    fn print_answer(&self, status: u16, text: String) -> Result<ExitCode> {
        let pretty = serde_json::from_str::<serde_json::Value>(&text)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or(text);
        println!("{pretty}");
        Ok(if (200..300).contains(&status) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> std::io::Result<String> {
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A listen address as a client connects to it: a wildcard address means this host.
fn connectable(listen: &str) -> String {
    match listen.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => {
            let ip: std::net::IpAddr = if a.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            std::net::SocketAddr::new(ip, a.port()).to_string()
        }
        _ => listen.to_string(),
    }
}

/// A query value, percent-encoded.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_reached_on_loopback() {
        assert_eq!(connectable("0.0.0.0:8787"), "127.0.0.1:8787");
        assert_eq!(connectable("[::]:8787"), "[::1]:8787");
        assert_eq!(connectable("10.0.0.5:8787"), "10.0.0.5:8787");
        assert_eq!(connectable("localhost:8787"), "localhost:8787");
    }
}
