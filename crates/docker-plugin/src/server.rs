//! The plugin's HTTP server on a unix socket (mode 0600). Docker's content type is not
//! application/json, so bodies are taken raw and parsed by the protocol module.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::plugin::{Failure, Plugin};
use crate::protocol::{self as p, Method};

/// Binds the socket, replacing a stale one left by a previous run.
pub fn bind(path: &Path) -> Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", path.display())),
    }
    let l = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding the Docker plugin socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", path.display()))?;
    Ok(l)
}

pub async fn serve(listener: tokio::net::UnixListener, plugin: Arc<Plugin>) -> Result<()> {
    let app = axum::Router::new().fallback(move |uri: Uri, body: Bytes| {
        let plugin = plugin.clone();
        async move { answer(&plugin, uri.path(), &body).await }
    });
    axum::serve(listener, app)
        .await
        .context("serving the Docker plugin")
}

async fn answer(plugin: &Plugin, path: &str, body: &[u8]) -> Response {
    let Some(m) = Method::from_path(path) else {
        // The protocol's "not implemented": Docker treats a 404 as an optional call not supported.
        return reply(
            StatusCode::NOT_FOUND,
            p::err(format!("{path} is not implemented by weft")),
        );
    };
    match plugin.call(m, body).await {
        Ok(v) => {
            tracing::debug!(%path, "answered");
            reply(StatusCode::OK, v)
        }
        Err(Failure::BadRequest(e)) => {
            tracing::warn!(%path, "refused: {e}");
            reply(StatusCode::BAD_REQUEST, p::err(e))
        }
        Err(Failure::Failed(e)) => {
            tracing::warn!(%path, "failed: {e:#}");
            reply(StatusCode::INTERNAL_SERVER_ERROR, p::err(format!("{e:#}")))
        }
    }
}

fn reply(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, p::CONTENT_TYPE)],
        v.to_string(),
    )
        .into_response()
}
