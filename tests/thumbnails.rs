//! Thumbnails of uploaded images (scale and crop, authenticated and legacy paths), refusals
//! for other media, and disabled URL previews.

mod common;

use common::Server;

#[tokio::test(flavor = "multi_thread")]
async fn thumbnails_are_made_of_images() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let token = alice.token.clone().unwrap();
    let http = reqwest::Client::new();
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbaImage::from_fn(400, 200, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 90, 255])
    })
    .write_to(&mut png, image::ImageFormat::Png)
    .unwrap();
    let up: serde_json::Value = http
        .post(format!(
            "{}/_matrix/media/v3/upload?filename=pic.png",
            s.base
        ))
        .bearer_auth(&token)
        .header("content-type", "image/png")
        .body(png.into_inner())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mxc = up["content_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mxc://")
        .to_owned();
    let get = |path: String, auth: bool| {
        let http = http.clone();
        let token = token.clone();
        let url = format!("{}{path}", s.base);
        async move {
            let mut rb = http.get(url);
            if auth {
                rb = rb.bearer_auth(token);
            }
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, ct, r.bytes().await.unwrap().to_vec())
        }
    };
    let (st, ct, body) = get(
        format!("/_matrix/client/v1/media/thumbnail/{mxc}?width=100&height=100&method=scale"),
        true,
    )
    .await;
    assert_eq!(st, 200);
    let img = image::load_from_memory(&body).unwrap();
    assert_eq!((img.width(), img.height()), (100, 50));
    assert!(ct.unwrap().starts_with("image/"));
    let (_, _, body) = get(
        format!("/_matrix/client/v1/media/thumbnail/{mxc}?width=64&height=64&method=crop"),
        true,
    )
    .await;
    let img = image::load_from_memory(&body).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
    // The legacy path needs no token; the authenticated one does.
    let (st, _, _) = get(
        format!("/_matrix/media/v3/thumbnail/{mxc}?width=32&height=32"),
        false,
    )
    .await;
    assert_eq!(st, 200);
    let (st, _, _) = get(
        format!("/_matrix/client/v1/media/thumbnail/{mxc}?width=32&height=32"),
        false,
    )
    .await;
    assert_eq!(st, 401);
    let (st, _, _) = get(
        format!("/_matrix/client/v1/media/thumbnail/{mxc}?width=32&height=32&method=stretch"),
        true,
    )
    .await;
    assert_eq!(st, 400);
    // Not an image: no thumbnail.
    let up: serde_json::Value = http
        .post(format!("{}/_matrix/media/v3/upload", s.base))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("just text")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let txt = up["content_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mxc://")
        .to_owned();
    let (st, _, _) = get(
        format!("/_matrix/client/v1/media/thumbnail/{txt}?width=32&height=32"),
        true,
    )
    .await;
    assert_eq!(st, 400);
    let (st, _, body) = get(
        "/_matrix/client/v1/media/preview_url?url=https://example.org".into(),
        true,
    )
    .await;
    assert_eq!(st, 403, "{}", String::from_utf8_lossy(&body));
}
