//! Media endpoints: upload (streamed to disk), download by the legacy unauthenticated and the
//! authenticated paths, and the repository's configuration.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    api::{errors::Params, extract::Authed},
    error::Error,
    media::{content_disposition, inline_safe},
    Haven,
};

#[derive(Deserialize)]
pub struct UploadQuery {
    filename: Option<String>,
}

/// `POST /_matrix/media/v3/upload`
pub async fn upload(
    State(h): State<Arc<Haven>>,
    Authed(s): Authed,
    Params(q): Params<UploadQuery>,
    req: Request,
) -> Result<Json<serde_json::Value>, Error> {
    h.users.require_not_suspended(&s.user_id)?;
    h.limit(crate::ratelimit::Action::MediaUpload, &s)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() < 256 && !v.contains(['\r', '\n']))
        .map(str::to_owned);
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > h.media.max_bytes {
            return Err(Error::too_large(format!(
                "uploads are limited to {} bytes",
                h.media.max_bytes
            )));
        }
    }
    let filename = q.filename.filter(|f| f.len() <= 255);
    let stream = req.into_body().into_data_stream();
    let id = h
        .media
        .upload(&h.db, stream, &s.user_id, content_type, filename)
        .await?;
    Ok(Json(
        json!({ "content_uri": format!("mxc://{}/{id}", h.config.server_name) }),
    ))
}

/// Which endpoint a media request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via<'a> {
    /// `/_matrix/client/v1/media/...`, with an access token: served to who may read it.
    Authenticated(&'a ruma::UserId),
    /// `/_matrix/media/v3/...`, without one: frozen for new media.
    Legacy,
}

/// The stored media `media_id` of this server, as `via` may serve it.
fn find(
    h: &Haven,
    server: &str,
    media_id: &str,
    via: Via<'_>,
) -> Result<(crate::media::MediaRecord, std::path::PathBuf), Error> {
    if server != h.config.server_name.as_str() {
        return Err(Error::not_found(
            "Remote media is not available without federation",
        ));
    }
    let not_found = || Error::not_found("Media not found");
    let (rec, path) = h.media.get(&h.db, media_id)?.ok_or_else(not_found)?;
    match via {
        Via::Legacy if !h.media.legacy_serves(&rec) => Err(Error::not_found(
            "Media not found: new media is served only by the authenticated endpoints (/_matrix/client/v1/media)",
        )),
        Via::Authenticated(reader) => {
            let mxc = format!("mxc://{server}/{media_id}");
            if crate::media::access::may_read(&h.rooms, &h.users, &mxc, &rec, reader)? {
                Ok((rec, path))
            } else {
                Err(not_found())
            }
        }
        Via::Legacy => Ok((rec, path)),
    }
}

async fn serve(
    h: &Haven,
    server: &str,
    media_id: &str,
    name: Option<String>,
    via: Via<'_>,
) -> Result<Response, Error> {
    let (rec, path) = find(h, server, media_id, via)?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| Error::not_found("Media not found"))?;
    let content_type = rec
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let inline = inline_safe(&content_type);
    let served_type = if inline {
        content_type
    } else {
        "application/octet-stream".into()
    };
    let filename = name.or(rec.filename);
    let mut resp = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let headers = resp.headers_mut();
    let hv = |s: &str| {
        HeaderValue::from_str(s)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(rec.size));
    safe_media_headers(
        headers,
        hv(&served_type),
        HeaderValue::from_str(&content_disposition(inline, filename.as_deref()))
            .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    Ok(resp)
}

/// The headers every media answer carries: its type and disposition, no sniffing, a sandbox
/// for anything a browser might render, and long caching (media never changes).
fn safe_media_headers(
    headers: &mut axum::http::HeaderMap,
    content_type: HeaderValue,
    disposition: HeaderValue,
) {
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400, immutable"),
    );
}

/// Legacy `GET /_matrix/media/v3/download/{serverName}/{mediaId}`
pub async fn download_legacy(
    State(h): State<Arc<Haven>>,
    Path((server, id)): Path<(String, String)>,
) -> Result<Response, Error> {
    serve(&h, &server, &id, None, Via::Legacy).await
}

pub async fn download_legacy_named(
    State(h): State<Arc<Haven>>,
    Path((server, id, name)): Path<(String, String, String)>,
) -> Result<Response, Error> {
    serve(&h, &server, &id, Some(name), Via::Legacy).await
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}` (authenticated media)
pub async fn download(
    State(h): State<Arc<Haven>>,
    Authed(s): Authed,
    Path((server, id)): Path<(String, String)>,
) -> Result<Response, Error> {
    serve(&h, &server, &id, None, Via::Authenticated(&s.user_id)).await
}

pub async fn download_named(
    State(h): State<Arc<Haven>>,
    Authed(s): Authed,
    Path((server, id, name)): Path<(String, String, String)>,
) -> Result<Response, Error> {
    serve(&h, &server, &id, Some(name), Via::Authenticated(&s.user_id)).await
}

/// `GET /_matrix/client/v1/media/config` (and the legacy path)
pub async fn config(State(h): State<Arc<Haven>>, _auth: Authed) -> Json<serde_json::Value> {
    Json(json!({ "m.upload.size": h.media.max_bytes }))
}

#[derive(Debug, serde::Deserialize)]
pub struct ThumbnailQuery {
    width: u32,
    height: u32,
    #[serde(default)]
    method: Option<String>,
}

async fn thumb(
    h: &Haven,
    server: &str,
    media_id: &str,
    q: ThumbnailQuery,
    via: Via<'_>,
) -> Result<Response, Error> {
    use crate::media::thumbnail::{self, Method};
    let method = match q.method.as_deref() {
        None | Some("scale") => Method::Scale,
        Some("crop") => Method::Crop,
        Some(_) => return Err(Error::invalid_param("method must be crop or scale")),
    };
    if q.width == 0 || q.height == 0 {
        return Err(Error::invalid_param("width and height must be positive"));
    }
    let (rec, path) = find(h, server, media_id, via)?;
    let ct = rec.content_type.clone().unwrap_or_default();
    if !thumbnail::supported(&ct) {
        return Err(Error::bad_request(
            crate::error::ErrCode::Unknown,
            "No thumbnail can be made of this media",
        ));
    }
    let (bytes, out_type) = h
        .media
        .thumbnail(&rec, path, q.width, q.height, method)
        .await?;
    let mut resp = bytes.into_response();
    safe_media_headers(
        resp.headers_mut(),
        HeaderValue::from_static(out_type),
        HeaderValue::from_static("inline; filename=thumbnail"),
    );
    Ok(resp)
}

/// `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}` (authenticated media)
pub async fn thumbnail(
    State(h): State<Arc<Haven>>,
    Authed(s): Authed,
    Path((server, id)): Path<(String, String)>,
    Params(q): Params<ThumbnailQuery>,
) -> Result<Response, Error> {
    thumb(&h, &server, &id, q, Via::Authenticated(&s.user_id)).await
}

/// Legacy `GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}`
pub async fn thumbnail_legacy(
    State(h): State<Arc<Haven>>,
    Path((server, id)): Path<(String, String)>,
    Params(q): Params<ThumbnailQuery>,
) -> Result<Response, Error> {
    thumb(&h, &server, &id, q, Via::Legacy).await
}

/// `GET /_matrix/client/v1/media/preview_url`: URL previews are not offered (the server
/// fetching arbitrary URLs for clients is a privacy and SSRF risk this deployment avoids).
pub async fn preview_url(_auth: Authed) -> Result<Response, Error> {
    Err(Error::new(
        axum::http::StatusCode::FORBIDDEN,
        crate::error::ErrCode::Forbidden,
        "URL previews are disabled on this server",
    ))
}
