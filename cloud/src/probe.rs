//! `nimbus-cloud probe <url>`: one plain-HTTP GET, success on a 2xx status. The container
//! images carry no curl or wget, and a health check that only asks whether the process exists
//! (`pidof`) says nothing about a role that is up but cannot reach its database; so compose and
//! Kubernetes exec-style checks run the binary itself against the role's own `/health/ready`.
//!
//! Deliberately tiny: one HTTP/1.1 request over a tokio `TcpStream`, the status line read and the
//! rest discarded, one overall deadline. `https://` (an api serving TLS itself) goes through
//! reqwest without checking the certificate: a probe asks its own role on loopback whether it is
//! ready, not who it is.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// Largest status line accepted; a probe answer is small.
const MAX_HEAD: usize = 8 * 1024;

/// `http://host:port/path` split into the address to connect to, the `Host` header and the path.
fn parse(url: &str) -> Result<(String, String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| Error::Config(format!("probe: {url:?} is not an http:// or https:// URL")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(Error::Config(format!("probe: {url:?} has no host or carries credentials")));
    }
    let addr = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((addr, authority.to_owned(), path.to_owned()))
}

/// GETs `url` and returns the HTTP status; `Err` when the URL is not plain HTTP, the connection
/// fails, the deadline passes or the answer is not HTTP.
pub async fn get_status(url: &str, timeout: Duration) -> Result<u16> {
    if url.starts_with("https://") {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Config(format!("probe: {e}")))?;
        let res = client.get(url).send().await.map_err(|e| {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why.push_str(&format!(": {s}"));
                source = s.source();
            }
            Error::Config(format!("probe: {why}"))
        })?;
        return Ok(res.status().as_u16());
    }
    let (addr, host, path) = parse(url)?;
    let exchange = async {
        let mut stream = TcpStream::connect(&addr).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: nimbus-probe\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 512];
        while !head.contains(&b'\n') && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(head)
    };
    let head = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Error::Config(format!("probe: {url} did not answer within {timeout:?}")))??;
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    match (words.next(), words.next().and_then(|s| s.parse::<u16>().ok())) {
        (Some(v), Some(status)) if v.starts_with("HTTP/") => Ok(status),
        _ => Err(Error::Config(format!("probe: {url} answered something that is not HTTP: {:?}", line.trim()))),
    }
}

/// Whether `status` counts as healthy.
pub fn healthy(status: u16) -> bool {
    (200..300).contains(&status)
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    async fn serve_once(answer: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /health/ready HTTP/1.1\r\n"));
            s.write_all(answer).await.unwrap();
        });
        format!("http://{addr}/health/ready")
    }

    #[tokio::test]
    async fn a_2xx_answer_is_healthy_and_a_503_is_not() {
        let ok = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        assert_eq!(get_status(&ok, Duration::from_secs(5)).await.unwrap(), 200);
        let down = serve_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        let status = get_status(&down, Duration::from_secs(5)).await.unwrap();
        assert_eq!(status, 503);
        assert!(healthy(200) && !healthy(status));
    }

    #[tokio::test]
    async fn a_closed_port_a_silent_server_and_non_http_are_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = format!("http://{}/health", listener.local_addr().unwrap());
        drop(listener);
        assert!(get_status(&closed, Duration::from_secs(5)).await.is_err());

        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", silent.local_addr().unwrap());
        let err = get_status(&url, Duration::from_millis(200)).await.unwrap_err();
        assert!(err.to_string().contains("did not answer"), "{err}");

        let garbage = serve_once(b"SSH-2.0-OpenSSH\r\n").await;
        assert!(get_status(&garbage, Duration::from_secs(5)).await.is_err());
    }

    #[test]
    fn only_http_urls_without_credentials_are_accepted() {
        assert!(parse("ftp://127.0.0.1:8080/health").is_err());
        assert!(parse("http://user:pw@127.0.0.1:8080/health").is_err());
        assert_eq!(parse("http://localhost/h").unwrap().0, "localhost:80");
        assert_eq!(parse("http://127.0.0.1:9464").unwrap().2, "/");
    }
}
