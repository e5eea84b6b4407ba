//! Durability: every acknowledged write survives `kill -9` and restart.

mod common;

use common::Server;

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_messages_survive_kill_9() {
    let s = Server::start().await;
    assert!(
        s.data_path().join("fjall").is_dir(),
        "a new server runs on fjall"
    );
    acknowledged_messages_survive_kill_9_on(s).await
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_messages_survive_kill_9_with_sled() {
    let s = Server::start_with(vec![("HAVEN_DATABASE__ENGINE", "sled")]).await;
    assert!(
        s.data_path().join("conf").is_file(),
        "the server runs on sled"
    );
    acknowledged_messages_survive_kill_9_on(s).await
}

async fn acknowledged_messages_survive_kill_9_on(mut s: Server) {
    const N: usize = 300;
    let alice = s.user("alice").await;
    let room = alice.create_room(|_| {}).await;

    // Several concurrent senders, so that acknowledgements share group-commit flushes.
    let mut tasks = Vec::new();
    for w in 0..6 {
        let c = alice.clone();
        let room = room.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in (w..N).step_by(6) {
                let body = format!("m{i}");
                c.send_text(&room, &body).await.expect("send");
                acked.push(body);
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    // Killed right after the last acknowledgement: no graceful shutdown, no final flush.
    s.kill9();
    s.spawn().await;

    let mut stored = alice.message_bodies(&room).await;
    stored.sort();
    acked.sort();
    assert_eq!(stored.len(), N);
    assert_eq!(stored, acked);

    // The server keeps working after recovery, and the account and token survived too.
    alice.send_text(&room, "after restart").await.unwrap();
    assert_eq!(alice.message_bodies(&room).await.len(), N + 1);
}
