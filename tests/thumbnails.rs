//! Thumbnails of uploaded images (scale and crop, authenticated and legacy paths), refusals
//! for other media, disabled URL previews, and who may read an upload.

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
    // Served from the nearest configured size at least as large: 320x240, scaled to fit.
    let img = image::load_from_memory(&body).unwrap();
    assert_eq!((img.width(), img.height()), (320, 160));
    assert!(ct.unwrap().starts_with("image/"));
    let (_, _, body) = get(
        format!("/_matrix/client/v1/media/thumbnail/{mxc}?width=64&height=64&method=crop"),
        true,
    )
    .await;
    let img = image::load_from_memory(&body).unwrap();
    assert_eq!((img.width(), img.height()), (96, 96));
    // The legacy unauthenticated path is frozen: it does not serve new media; the
    // authenticated one needs a token.
    let (st, _, _) = get(
        format!("/_matrix/media/v3/thumbnail/{mxc}?width=32&height=32"),
        false,
    )
    .await;
    assert_eq!(st, 404);
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

/// The server's peak resident memory so far, in MiB.
fn peak_rss_mib(s: &Server) -> u64 {
    let pid = s.child.as_ref().expect("running").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024
}

async fn upload(s: &Server, token: &str, png: Vec<u8>) -> String {
    let up: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/_matrix/media/v3/upload", s.base))
        .bearer_auth(token)
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    up["content_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mxc://")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decompression_bomb_is_refused_and_sizes_are_a_fixed_set() {
    let s = Server::start().await;
    let alice = s.user("alice").await;
    let token = alice.token.clone().unwrap();
    let http = reqwest::Client::new();
    // 6000x6000 pixels (36 M, over the 32 M budget) of one colour: a file of a few tens of KB
    // that would take 144 MB as RGBA once decoded.
    let mut bomb = std::io::Cursor::new(Vec::new());
    image::GrayImage::new(6000, 6000)
        .write_to(&mut bomb, image::ImageFormat::Png)
        .unwrap();
    let bomb = bomb.into_inner();
    assert!(bomb.len() < 1_000_000, "{}", bomb.len());
    let bomb = upload(&s, &token, bomb).await;
    let before = peak_rss_mib(&s);
    let requests = (0..8).map(|i| {
        let http = http.clone();
        let url = format!(
            "{}/_matrix/client/v1/media/thumbnail/{bomb}?width={}&height={}",
            s.base,
            100 + i,
            100 + i
        );
        let token = token.clone();
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    });
    for (status, body) in futures::future::join_all(requests).await {
        assert_eq!(
            (status, body["errcode"].as_str()),
            (413, Some("M_TOO_LARGE")),
            "{body}"
        );
    }
    let after = peak_rss_mib(&s);
    assert!(after < before + 64, "peak RSS {before} -> {after} MiB");

    // Every width and height asked for makes at most the configured sizes (five by default).
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_fn(1000, 700, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
    })
    .write_to(&mut png, image::ImageFormat::Png)
    .unwrap();
    let pic = upload(&s, &token, png.into_inner()).await;
    for w in (10..1200).step_by(37) {
        for method in ["crop", "scale"] {
            let r = http
                .get(format!(
                    "{}/_matrix/client/v1/media/thumbnail/{pic}?width={w}&height={w}&method={method}",
                    s.base
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    let thumbs = walk(&s.data_path().join("media/thumbnails"));
    assert!((1..=5).contains(&thumbs), "{thumbs} thumbnails on disk");
}

/// Files below `dir`.
fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// With `media.legacy_unauthenticated`, the legacy endpoints serve new media as before.
#[tokio::test(flavor = "multi_thread")]
async fn legacy_media_can_be_left_open() {
    let s = Server::start_with(vec![("HAVEN_MEDIA__LEGACY_UNAUTHENTICATED", "true")]).await;
    let alice = s.user("alice").await;
    let mut png = std::io::Cursor::new(Vec::new());
    image::GrayImage::new(10, 10)
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let mxc = upload(&s, alice.token.as_deref().unwrap(), png.into_inner()).await;
    let r = reqwest::get(format!("{}/_matrix/media/v3/download/{mxc}", s.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Authenticated media is served to who may see it: the uploader, members of a room the uploader
/// shares with them, and anyone for avatars (profiles and rooms anyone can find); to anyone else
/// it is as if it did not exist (issue 16, item 7).
#[tokio::test(flavor = "multi_thread")]
async fn authenticated_media_is_served_only_to_who_may_see_it() {
    let s = Server::start().await;
    let (alice, bob, carol) = (
        s.user("alice").await,
        s.user("bob").await,
        s.user("carol").await,
    );
    let mut png = std::io::Cursor::new(Vec::new());
    image::GrayImage::new(40, 40)
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let png = png.into_inner();
    let token = alice.token.as_deref().unwrap();
    let (photo, avatar, room_avatar) = (
        upload(&s, token, png.clone()).await,
        upload(&s, token, png.clone()).await,
        upload(&s, token, png.clone()).await,
    );
    // A photo in a private room of alice and bob.
    let private = alice
        .create_room_json(serde_json::json!({ "preset": "private_chat", "invite": [bob.uid()] }))
        .await;
    let private = ruma::RoomId::parse(private).unwrap();
    bob.join(&private).await.unwrap();
    let (st, _) = alice
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/rooms/{private}/send/m.room.message/t1"),
            Some(&serde_json::json!({ "msgtype": "m.image", "body": "photo.png", "url": format!("mxc://{photo}") }).to_string()),
        )
        .await;
    assert_eq!(st, 200);
    // Alice's profile picture, and the picture of a public room.
    let (st, _) = alice
        .raw(
            "PUT",
            &format!("/_matrix/client/v3/profile/{}/avatar_url", alice.uid()),
            Some(&serde_json::json!({ "avatar_url": format!("mxc://{avatar}") }).to_string()),
        )
        .await;
    assert_eq!(st, 200);
    alice
        .create_room_json(serde_json::json!({
            "preset": "public_chat",
            "initial_state": [{ "type": "m.room.avatar", "state_key": "", "content": { "url": format!("mxc://{room_avatar}") } }],
        }))
        .await;

    let get = |who: &common::Client, what: &str, mxc: &str| {
        let path = match what {
            "download" => format!("/_matrix/client/v1/media/download/{mxc}"),
            _ => format!("/_matrix/client/v1/media/thumbnail/{mxc}?width=32&height=32"),
        };
        let (base, token) = (who.base.clone(), who.token.clone().unwrap());
        async move {
            let r = reqwest::Client::new()
                .get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body = r.bytes().await.unwrap();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).ok(),
            )
        }
    };
    for what in ["download", "thumbnail"] {
        assert_eq!(get(&alice, what, &photo).await.0, 200, "the uploader");
        assert_eq!(get(&bob, what, &photo).await.0, 200, "a member of the room");
        let (st, body) = get(&carol, what, &photo).await;
        assert_eq!(st, 404, "{what} by a stranger");
        assert_eq!(body.unwrap()["errcode"], "M_NOT_FOUND");
        assert_eq!(get(&carol, what, &avatar).await.0, 200, "a profile picture");
        assert_eq!(
            get(&carol, what, &room_avatar).await.0,
            200,
            "a public room's picture"
        );
    }
    // Refused media looks like media that does not exist.
    let (_, missing) = get(&carol, "download", &format!("localhost:{}/nope", s.port)).await;
    let (_, refused) = get(&carol, "download", &photo).await;
    assert_eq!(missing, refused);
}
