//! Thumbnails: images decoded with the `image` crate, scaled to fit or cropped to fill one of a
//! fixed set of sizes, encoded as PNG (images with transparency) or JPEG, and kept on disk next
//! to the originals so each size of each file is made once.
//!
//! Decoding is where a small file can cost a lot: a 400 KB PNG may declare 12000x12000 pixels
//! (576 MB as RGBA). So the image's declared size is read from its header first and anything over
//! the pixel budget is refused before a byte of it is decoded; only the configured sizes are made
//! (the nearest one at least as large as asked), so asking for every width and height in turn
//! makes nothing new; and the caller decodes at most a few images at once (see `Thumbnailer`).

use std::path::{Path, PathBuf};

use image::{imageops::FilterType, DynamicImage, ImageFormat, ImageReader, Limits};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Memory the decoder may allocate, whatever the image declares (a second line of defence
/// behind the pixel budget).
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Scale,
    Crop,
}

/// One thumbnail size the server makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Size {
    pub width: u32,
    pub height: u32,
    pub method: Method,
}

/// Synapse's default set: the sizes clients ask for (avatars, previews).
pub fn default_sizes() -> Vec<Size> {
    [
        (32, 32, Method::Crop),
        (96, 96, Method::Crop),
        (320, 240, Method::Scale),
        (640, 480, Method::Scale),
        (800, 600, Method::Scale),
    ]
    .into_iter()
    .map(|(width, height, method)| Size {
        width,
        height,
        method,
    })
    .collect()
}

/// The size to serve for a request: among the sizes of the asked method (all sizes when none
/// has it), the smallest at least as large as asked, else the largest.
pub fn pick(sizes: &[Size], width: u32, height: u32, method: Method) -> Option<Size> {
    let same: Vec<Size> = sizes
        .iter()
        .copied()
        .filter(|s| s.method == method)
        .collect();
    let candidates = if same.is_empty() {
        sizes.to_vec()
    } else {
        same
    };
    let area = |s: &Size| u64::from(s.width) * u64::from(s.height);
    candidates
        .iter()
        .filter(|s| s.width >= width && s.height >= height)
        .min_by_key(|s| area(s))
        .or_else(|| candidates.iter().max_by_key(|s| area(s)))
        .copied()
}

/// Content types we make thumbnails of.
pub fn supported(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

fn cache_path(dir: &Path, sha: &str, size: Size) -> PathBuf {
    let m = if size.method == Method::Crop {
        "crop"
    } else {
        "scale"
    };
    dir.join("thumbnails")
        .join(&sha[..2])
        .join(format!("{sha}-{}x{}-{m}", size.width, size.height))
}

/// The thumbnail of `sha` at `size` if it was made before: (bytes, content type).
pub fn cached(media_dir: &Path, sha: &str, size: Size) -> Option<(Vec<u8>, &'static str)> {
    let cached = cache_path(media_dir, sha, size);
    [("png", "image/png"), ("jpg", "image/jpeg")]
        .into_iter()
        .find_map(|(ext, ct)| Some((std::fs::read(cached.with_extension(ext)).ok()?, ct)))
}

/// Makes (or finds) the thumbnail of the file at `source` at `size`: (bytes, content type).
/// An image declaring more than `max_pixels` is refused (413 `M_TOO_LARGE`) before decoding.
pub fn thumbnail(
    media_dir: &Path,
    source: &Path,
    sha: &str,
    size: Size,
    max_pixels: u64,
) -> Result<(Vec<u8>, &'static str)> {
    if let Some(found) = cached(media_dir, sha, size) {
        return Ok(found);
    }
    let open = || -> Result<ImageReader<std::io::BufReader<std::fs::File>>> {
        ImageReader::open(source)
            .map_err(Error::internal)?
            .with_guessed_format()
            .map_err(Error::internal)
    };
    let (width, height) = open()?
        .into_dimensions()
        .map_err(|e| Error::invalid_param(format!("cannot make a thumbnail of this file: {e}")))?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(Error::too_large(format!(
            "This image ({width}x{height}) is too large to make a thumbnail of"
        )));
    }
    let mut reader = open()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| Error::invalid_param(format!("cannot make a thumbnail of this file: {e}")))?;
    let (w, h, method) = (size.width, size.height, size.method);
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
    let path = cache_path(media_dir, sha, size).with_extension(ext);
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

    const LIMIT: u64 = 32_000_000;

    fn size(width: u32, height: u32, method: Method) -> Size {
        Size {
            width,
            height,
            method,
        }
    }

    #[test]
    fn scales_to_fit_crops_to_fill_and_caches() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.png");
        image::RgbImage::from_fn(400, 200, |x, _| image::Rgb([(x % 256) as u8, 0, 0]))
            .save(&src)
            .unwrap();
        let scale = size(100, 100, Method::Scale);
        let (b, ct) = thumbnail(dir.path(), &src, "abcdef", scale, LIMIT).unwrap();
        assert_eq!(ct, "image/jpeg");
        let t = image::load_from_memory(&b).unwrap();
        assert_eq!((t.width(), t.height()), (100, 50));
        let crop = size(100, 100, Method::Crop);
        let (b, _) = thumbnail(dir.path(), &src, "abcdef", crop, LIMIT).unwrap();
        let t = image::load_from_memory(&b).unwrap();
        assert_eq!((t.width(), t.height()), (100, 100));
        // Cached: the source can go.
        std::fs::remove_file(&src).unwrap();
        assert!(thumbnail(dir.path(), &src, "abcdef", crop, LIMIT).is_ok());
        // Not an image.
        let txt = dir.path().join("x.txt");
        std::fs::write(&txt, b"hello").unwrap();
        assert!(thumbnail(dir.path(), &txt, "fedcba", scale, LIMIT).is_err());
    }

    #[test]
    fn an_image_over_the_pixel_budget_is_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("big.png");
        image::GrayImage::new(300, 200).save(&src).unwrap();
        let err = thumbnail(
            dir.path(),
            &src,
            "abcdef",
            size(32, 32, Method::Crop),
            50_000,
        )
        .unwrap_err();
        assert!(
            matches!(err.code(), crate::error::ErrCode::TooLarge),
            "{err}"
        );
    }

    #[test]
    fn the_nearest_configured_size_at_least_as_large() {
        let sizes = default_sizes();
        assert_eq!(
            pick(&sizes, 10, 10, Method::Crop),
            Some(size(32, 32, Method::Crop))
        );
        assert_eq!(
            pick(&sizes, 33, 20, Method::Crop),
            Some(size(96, 96, Method::Crop))
        );
        assert_eq!(
            pick(&sizes, 500, 100, Method::Crop),
            Some(size(96, 96, Method::Crop))
        );
        assert_eq!(
            pick(&sizes, 321, 100, Method::Scale),
            Some(size(640, 480, Method::Scale))
        );
        assert_eq!(
            pick(&sizes, 5000, 5000, Method::Scale),
            Some(size(800, 600, Method::Scale))
        );
        let only_scale = vec![size(320, 240, Method::Scale)];
        assert_eq!(
            pick(&only_scale, 32, 32, Method::Crop),
            Some(size(320, 240, Method::Scale))
        );
        assert_eq!(pick(&[], 32, 32, Method::Crop), None);
    }
}
