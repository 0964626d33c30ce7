//! The smallest HTTP client weft needs: one HTTP/1.0 request over a unix socket (Docker's API,
//! and the plugin's own socket when `weft install docker` checks it). HTTP/1.0 means no chunked
//! answer: the body runs to the end of the stream.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends one request; returns the body of a 200 answer, else an error naming the status and body.
pub async fn request(socket: &Path, method: &str, path: &str, body: &[u8]) -> Result<Vec<u8>> {
    let talk = async {
        let mut s = tokio::net::UnixStream::connect(socket).await?;
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: weft\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
            crate::protocol::CONTENT_TYPE,
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let raw = tokio::time::timeout(TIMEOUT, talk)
        .await
        .map_err(|_| anyhow!("no answer from {} within {TIMEOUT:?}", socket.display()))?
        .with_context(|| format!("talking to {}", socket.display()))?;
    split_response(&raw).with_context(|| format!("the answer to {method} {path}"))
}

fn split_response(raw: &[u8]) -> Result<Vec<u8>> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("not an HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head.lines().next().unwrap_or_default();
    let body = raw[end + 4..].to_vec();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("{status}: {}", String::from_utf8_lossy(&body).trim());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        assert_eq!(
            split_response(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[]").unwrap(),
            b"[]"
        );
        let e = split_response(b"HTTP/1.0 404 Not Found\r\n\r\n{\"message\":\"page not found\"}\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "HTTP/1.0 404 Not Found: {\"message\":\"page not found\"}"
        );
        assert!(split_response(b"garbage").is_err());
    }
}
