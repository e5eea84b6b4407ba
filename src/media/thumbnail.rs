//! Thumbnails: images decoded with the `image` crate (within size limits, so a small file
//! cannot expand into gigabytes), scaled to fit or cropped to fill the requested box, encoded
//! as PNG (images with transparency) or JPEG, and kept on disk next to the originals so each
//! size is made once.

use std::path::{Path, PathBuf};

use image::{imageops::FilterType, DynamicImage, ImageFormat, ImageReader, Limits};

use crate::error::{Error, Result};

/// Largest source we decode (pixels per side, and memory).
const MAX_SIDE: u32 = 12_000;
const MAX_ALLOC: u64 = 512 * 1024 * 1024;
/// Largest thumbnail we make.
const MAX_THUMB: u32 = 1_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Scale,
    Crop,
}

/// Content types we make thumbnails of.
pub fn supported(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

fn cache_path(dir: &Path, sha: &str, w: u32, h: u32, m: Method) -> PathBuf {
    let m = if m == Method::Crop { "crop" } else { "scale" };
    dir.join("thumbnails")
        .join(&sha[..2])
        .join(format!("{sha}-{w}x{h}-{m}"))
}

/// Makes (or finds) the thumbnail of the file at `source`: (bytes, content type).
pub fn thumbnail(
    media_dir: &Path,
    source: &Path,
    sha: &str,
    width: u32,
    height: u32,
    method: Method,
) -> Result<(Vec<u8>, &'static str)> {
    let (w, h) = (width.clamp(1, MAX_THUMB), height.clamp(1, MAX_THUMB));
    let cached = cache_path(media_dir, sha, w, h, method);
    for (ext, ct) in [("png", "image/png"), ("jpg", "image/jpeg")] {
        if let Ok(bytes) = std::fs::read(cached.with_extension(ext)) {
            return Ok((bytes, ct));
        }
    }
    let mut reader = ImageReader::open(source)
        .map_err(Error::internal)?
        .with_guessed_format()
        .map_err(Error::internal)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| Error::invalid_param(format!("cannot make a thumbnail of this file: {e}")))?;
    let thumb: DynamicImage = match method {
        // Never enlarge: a small image is its own thumbnail.
        Method::Scale if img.width() <= w && img.height() <= h => img,
        Method::Scale => img.resize(w, h, FilterType::Triangle),
        Method::Crop => img.resize_to_fill(
            w.min(img.width()),
            h.min(img.height()),
            FilterType::Triangle,
        ),
    };
    let (format, ct, ext) = if thumb.color().has_alpha() {
        (ImageFormat::Png, "image/png", "png")
    } else {
        (ImageFormat::Jpeg, "image/jpeg", "jpg")
    };
    let thumb = if format == ImageFormat::Jpeg {
        DynamicImage::ImageRgb8(thumb.to_rgb8())
    } else {
        thumb
    };
    let mut out = std::io::Cursor::new(Vec::new());
    thumb.write_to(&mut out, format).map_err(Error::internal)?;
    let bytes = out.into_inner();
    let path = cached.with_extension(ext);
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    // Written aside and renamed: a reader never sees half a thumbnail.
    let tmp = path.with_extension(format!("{ext}.tmp"));
    if std::fs::write(&tmp, &bytes).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
    Ok((bytes, ct))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_to_fit_crops_to_fill_and_caches() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.png");
        image::RgbImage::from_fn(400, 200, |x, _| image::Rgb([(x % 256) as u8, 0, 0]))
            .save(&src)
            .unwrap();
        let (b, ct) = thumbnail(dir.path(), &src, "abcdef", 100, 100, Method::Scale).unwrap();
        assert_eq!(ct, "image/jpeg");
        let t = image::load_from_memory(&b).unwrap();
        assert_eq!((t.width(), t.height()), (100, 50));
        let (b, _) = thumbnail(dir.path(), &src, "abcdef", 100, 100, Method::Crop).unwrap();
        let t = image::load_from_memory(&b).unwrap();
        assert_eq!((t.width(), t.height()), (100, 100));
        // Cached: the source can go.
        std::fs::remove_file(&src).unwrap();
        assert!(thumbnail(dir.path(), &src, "abcdef", 100, 100, Method::Crop).is_ok());
        // Not an image.
        let txt = dir.path().join("x.txt");
        std::fs::write(&txt, b"hello").unwrap();
        assert!(thumbnail(dir.path(), &txt, "fedcba", 10, 10, Method::Scale).is_err());
    }
}
