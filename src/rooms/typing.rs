//! Typing notifications: in memory only (they are ephemeral), each change given a stream
//! position so /sync sees it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};

use crate::{error::Result, storage::Storage, stream::Stream};

type Edus = tokio::sync::broadcast::Sender<(OwnedRoomId, serde_json::Value)>;

fn typing_edu(users: &HashMap<OwnedUserId, Instant>) -> serde_json::Value {
    let now = Instant::now();
    let ids: Vec<_> = users
        .iter()
        .filter(|(_, e)| **e > now)
        .map(|(u, _)| u.clone())
        .collect();
    serde_json::json!({ "type": "m.typing", "content": { "user_ids": ids } })
}

#[derive(Default)]
struct RoomTyping {
    pos: u64,
    users: HashMap<OwnedUserId, Instant>,
}

pub struct Typing {
    stream: Arc<Stream>,
    db: Arc<Storage>,
    edus: Edus,
    rooms: Arc<Mutex<HashMap<OwnedRoomId, RoomTyping>>>,
}

/// Longest typing timeout honoured.
const MAX_TIMEOUT: Duration = Duration::from_secs(120);

impl Typing {
    pub fn new(stream: Arc<Stream>, db: Arc<Storage>, edus: Edus) -> Self {
        Self {
            stream,
            db,
            edus,
            rooms: Default::default(),
        }
    }

    /// Marks `user` as typing (for `timeout`) or not.
    pub async fn set(&self, room: &RoomId, user: &UserId, typing: Option<Duration>) -> Result<()> {
        let pos = {
            let mut c = self.stream.begin(&self.db).await;
            c.allocate()?
        };
        {
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            let r = rooms.entry(room.to_owned()).or_default();
            match typing {
                Some(t) => {
                    r.users
                        .insert(user.to_owned(), Instant::now() + t.min(MAX_TIMEOUT));
                }
                None => {
                    r.users.remove(user);
                }
            }
            r.pos = pos;
            let _ = self.edus.send((room.to_owned(), typing_edu(&r.users)));
        }
        self.stream
            .publish_to(pos, &[crate::stream::Topic::Room(room.to_owned())]);
        if let Some(t) = typing {
            let (rooms, stream, db, room, user, edus) = (
                self.rooms.clone(),
                self.stream.clone(),
                self.db.clone(),
                room.to_owned(),
                user.to_owned(),
                self.edus.clone(),
            );
            let t = t.min(MAX_TIMEOUT);
            tokio::spawn(async move {
                tokio::time::sleep(t).await;
                let expired = {
                    let rooms = rooms.lock().unwrap_or_else(|e| e.into_inner());
                    rooms
                        .get(&room)
                        .and_then(|r| r.users.get(&user))
                        .is_some_and(|e| *e <= Instant::now())
                };
                if expired {
                    let Ok(pos) = stream.begin(&db).await.allocate() else {
                        return;
                    };
                    let mut rooms = rooms.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(r) = rooms.get_mut(&room) {
                        if r.users.get(&user).is_some_and(|e| *e <= Instant::now()) {
                            r.users.remove(&user);
                            r.pos = pos;
                            let _ = edus.send((room.clone(), typing_edu(&r.users)));
                        }
                    }
                    drop(rooms);
                    stream.publish_to(pos, &[crate::stream::Topic::Room(room.clone())]);
                }
            });
        }
        Ok(())
    }

    /// Users typing in `room` and the position of the last change.
    pub fn get(&self, room: &RoomId) -> (u64, Vec<OwnedUserId>) {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        match rooms.get(room) {
            Some(r) => {
                let now = Instant::now();
                (
                    r.pos,
                    r.users
                        .iter()
                        .filter(|(_, e)| **e > now)
                        .map(|(u, _)| u.clone())
                        .collect(),
                )
            }
            None => (0, Vec::new()),
        }
    }
}

impl super::Rooms {
    /// A user's typing state, told to the room's other servers when the user is local.
    pub async fn set_typing(
        &self,
        room: &RoomId,
        user: &UserId,
        typing: Option<Duration>,
    ) -> Result<()> {
        self.typing.set(room, user, typing).await?;
        if user.server_name() == self.server_name() {
            let edu = serde_json::json!({ "edu_type": "m.typing", "content": {
                "room_id": room, "user_id": user, "typing": typing.is_some(),
            } });
            self.outbox.send_edu(self, room, edu)?;
        }
        Ok(())
    }
}
