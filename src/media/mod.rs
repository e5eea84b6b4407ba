//! The media repository: uploads are streamed to disk while being hashed (never held whole in
//! memory), stored content-addressed (identical files once), with metadata in the database.

pub mod access;
pub mod thumbnail;

use std::path::{Path, PathBuf};

use futures::StreamExt;
use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{
    error::{Error, Result},
    storage::{Json, Storage},
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaRecord {
    /// Hex SHA-256 of the content: its file name on disk.
    pub sha256: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub uploader: OwnedUserId,
    pub created_ms: u64,
}

pub struct Media {
    dir: PathBuf,
    pub max_bytes: u64,
    /// Thumbnail sizes and limits (see `thumbnail`).
    thumbnails: crate::config::MediaConfig,
    /// Images being decoded for thumbnails at once, at most `thumbnail_concurrency`.
    decoding: tokio::sync::Semaphore,
    /// Media uploaded from this time on (ms) is not served by the legacy unauthenticated
    /// endpoints; `None` when they serve everything (`media.legacy_unauthenticated`).
    legacy_frozen_from: Option<u64>,
}

/// When the legacy unauthenticated endpoints were frozen: the first start of a server that
/// freezes them (media uploaded before stays reachable there, as in Synapse's freeze).
const LEGACY_FREEZE_KEY: &str = "media_legacy_freeze_ms";

impl Media {
    pub fn new(dir: PathBuf, config: &crate::config::MediaConfig, db: &Storage) -> Result<Self> {
        std::fs::create_dir_all(dir.join("tmp")).map_err(Error::internal)?;
        let legacy_frozen_from = if config.legacy_unauthenticated {
            None
        } else {
            let mut at = db.meta_u64(LEGACY_FREEZE_KEY)?;
            if at == 0 {
                at = crate::util::now_ms();
                db.put_meta_u64(LEGACY_FREEZE_KEY, at)?;
            }
            Some(at)
        };
        Ok(Self {
            dir,
            max_bytes: config.max_upload_bytes,
            thumbnails: config.clone(),
            decoding: tokio::sync::Semaphore::new(config.thumbnail_concurrency),
            legacy_frozen_from,
        })
    }

    /// Whether the legacy unauthenticated endpoints may serve `rec`: only media uploaded before
    /// they were frozen (the spec's v1.11 freeze), unless they are configured open.
    pub fn legacy_serves(&self, rec: &MediaRecord) -> bool {
        self.legacy_frozen_from
            .is_none_or(|frozen| rec.created_ms < frozen)
    }

    /// The thumbnail of `rec` (content at `path`) nearest to what was asked, made once per
    /// configured size: (bytes, content type).
    pub async fn thumbnail(
        &self,
        rec: &MediaRecord,
        path: PathBuf,
        width: u32,
        height: u32,
        method: thumbnail::Method,
    ) -> Result<(Vec<u8>, &'static str)> {
        let size = thumbnail::pick(&self.thumbnails.thumbnail_sizes, width, height, method)
            .ok_or_else(|| Error::not_found("This server makes no thumbnails"))?;
        if let Some(found) = thumbnail::cached(&self.dir, &rec.sha256, size) {
            return Ok(found);
        }
        let _permit = self.decoding.acquire().await.map_err(Error::internal)?;
        let (dir, sha, max_pixels) = (
            self.dir.clone(),
            rec.sha256.clone(),
            self.thumbnails.max_thumbnail_pixels,
        );
        tokio::task::spawn_blocking(move || {
            thumbnail::thumbnail(&dir, &path, &sha, size, max_pixels)
        })
        .await
        .map_err(Error::internal)?
    }

    fn content_path(&self, sha: &str) -> PathBuf {
        self.dir.join(&sha[..2]).join(sha)
    }

    /// Streams `body` to disk and records it; returns the new media ID.
    pub async fn upload<S, E>(
        &self,
        db: &Storage,
        mut body: S,
        uploader: &UserId,
        content_type: Option<String>,
        filename: Option<String>,
    ) -> Result<String>
    where
        S: futures::Stream<Item = std::result::Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let tmp = self
            .dir
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(Error::internal)?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let result: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    Error::bad_request(
                        crate::error::ErrCode::Unknown,
                        format!("upload interrupted: {e}"),
                    )
                })?;
                size += chunk.len() as u64;
                if size > self.max_bytes {
                    return Err(Error::too_large(format!(
                        "uploads are limited to {} bytes",
                        self.max_bytes
                    )));
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(Error::internal)?;
            }
            file.sync_all().await.map_err(Error::internal)?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let sha = hex::encode(hasher.finalize());
        let path = self.content_path(&sha);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            let _ = tokio::fs::remove_file(&tmp).await;
        } else {
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(Error::internal)?;
            }
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(Error::internal)?;
        }
        let media_id = crate::util::random_string(24);
        let rec = MediaRecord {
            sha256: sha,
            size,
            content_type,
            filename,
            uploader: uploader.to_owned(),
            created_ms: crate::util::now_ms(),
        };
        db.t.media.put(&media_id, &Json(rec))?;
        db.durable().await?;
        Ok(media_id)
    }

    /// The record and the on-disk path of a local media item (none while an admin has it
    /// quarantined).
    pub fn get(&self, db: &Storage, media_id: &str) -> Result<Option<(MediaRecord, PathBuf)>> {
        if db.t.quarantined_media.contains(&media_id.to_owned())? {
            return Ok(None);
        }
        Ok(db.t.media.get(&media_id.to_owned())?.map(|Json(r)| {
            let p = self.content_path(&r.sha256);
            (r, p)
        }))
    }

    /// Removes stored content (no upload refers to it any more).
    pub fn remove_content(&self, sha: &str) -> Result<()> {
        match std::fs::remove_file(self.content_path(sha)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::internal(e)),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Content types served inline; anything else is served as an attachment, so a browser
/// never renders uploaded HTML or scripts in the homeserver's origin.
pub fn inline_safe(content_type: &str) -> bool {
    const SAFE: &[&str] = &[
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/apng",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "audio/mp4",
        "audio/webm",
        "audio/aac",
        "audio/mpeg",
        "audio/ogg",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-pn-wav",
        "audio/flac",
        "audio/x-flac",
        "text/plain",
        "text/css",
        "text/csv",
        "application/json",
        "application/ld+json",
    ];
    SAFE.contains(
        &content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str(),
    )
}

/// A `Content-Disposition` value with the filename escaped (RFC 6266 `filename*`), so no
/// header injection or quoting trick can come through a filename.
pub fn content_disposition(inline: bool, filename: Option<&str>) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    match filename {
        Some(f) if !f.is_empty() => {
            let encoded =
                percent_encoding::utf8_percent_encode(f, percent_encoding::NON_ALPHANUMERIC);
            format!("{kind}; filename*=utf-8''{encoded}")
        }
        _ => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_cannot_inject_headers() {
        let d = content_disposition(false, Some("evil\r\nSet-Cookie: x=1; \"a.html"));
        assert!(
            !d.contains('\r')
                && !d.contains('\n')
                && !d.contains('"')
                && !d.contains(' '.to_string().repeat(2).as_str())
        );
        assert!(d.starts_with("attachment; filename*=utf-8''evil%0D%0ASet%2DCookie"));
        assert_eq!(content_disposition(true, None), "inline");
        assert!(inline_safe("image/png") && inline_safe("IMAGE/PNG; charset=x"));
        assert!(
            !inline_safe("text/html")
                && !inline_safe("image/svg+xml")
                && !inline_safe("application/javascript")
        );
    }
}
