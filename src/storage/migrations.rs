//! Forward migrations of the stored schema. Each runs once, when a database of the version it
//! starts from is opened, and records the version it leaves; a database from a newer build is
//! refused rather than misread.

use std::collections::BTreeMap;

use super::{table, StorageError, Tables, SCHEMA_VERSION};

type Migration = fn(&Tables) -> Result<(), StorageError>;

/// `(from version, what it does, how)`, in order; each leaves version `from + 1`.
const MIGRATIONS: &[(u64, &str, Migration)] = &[(1, "count each room's events", room_event_counts)];

/// Brings the database to [`SCHEMA_VERSION`]; answers the migrations it ran.
pub fn run(t: &Tables) -> Result<Vec<&'static str>, StorageError> {
    let found = version(t)?;
    if found == 0 {
        // A new database: the current schema from the start.
        set_version(t, SCHEMA_VERSION)?;
        return Ok(Vec::new());
    }
    if found > SCHEMA_VERSION {
        return Err(StorageError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let mut ran = Vec::new();
    for (from, what, migrate) in MIGRATIONS {
        if *from >= found {
            tracing::info!(from, to = from + 1, what, "migrating the database");
            migrate(t)?;
            set_version(t, from + 1)?;
            ran.push(*what);
        }
    }
    Ok(ran)
}

fn version(t: &Tables) -> Result<u64, StorageError> {
    match t.meta.get(&"schema_version".to_owned())? {
        Some(v) => <u64 as table::Value>::from_bytes(&v),
        None => Ok(0),
    }
}

fn set_version(t: &Tables, v: u64) -> Result<(), StorageError> {
    t.meta
        .put(&"schema_version".to_owned(), &table::Value::to_bytes(&v)?)
}

/// 1 -> 2: each room's event count (`RoomMeta::event_count`) from its timeline; kept up to
/// date from then on.
fn room_event_counts(t: &Tables) -> Result<(), StorageError> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for item in t.timeline.scan_prefix(&[]) {
        let ((room, _), _) = item?;
        *counts.entry(room).or_default() += 1;
    }
    for (room, n) in counts {
        if let Some(super::Json(mut meta)) = t.rooms.get(&room)? {
            meta.event_count = n;
            t.rooms.put(&room, &super::Json(meta))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Json, Storage};

    fn meta() -> crate::rooms::RoomMeta {
        crate::rooms::RoomMeta {
            version: ruma::RoomVersionId::V12,
            create_event_id: ruma::owned_event_id!("$create"),
            forward_extremities: Vec::new(),
            max_depth: 0,
            state_group: 0,
            last_pos: 0,
            event_count: 0,
        }
    }

    fn entry(id: &str) -> crate::rooms::timeline::TimelineEntry {
        crate::rooms::timeline::TimelineEntry {
            event_id: id.into(),
            sender: "@a:x".into(),
            kind: "m.room.message".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_version_1_database_is_migrated_once_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(version(&db.t).unwrap(), SCHEMA_VERSION, "a new database");
        // As a version-1 build left it: two rooms' timelines, no counts.
        set_version(&db.t, 1).unwrap();
        for room in ["!a:x", "!b:x"] {
            db.t.rooms.put(&room.to_owned(), &Json(meta())).unwrap();
        }
        for (room, pos) in [("!a:x", 1), ("!a:x", 2), ("!b:x", 3)] {
            db.t.timeline
                .put(&(room.to_owned(), pos), &entry(&format!("$e{pos}")))
                .unwrap();
        }
        let count = |room: &str| {
            db.t.rooms
                .get(&room.to_owned())
                .unwrap()
                .map(|Json(m)| m.event_count)
        };
        assert_eq!(run(&db.t).unwrap(), ["count each room's events"]);
        assert_eq!(version(&db.t).unwrap(), SCHEMA_VERSION);
        assert_eq!((count("!a:x"), count("!b:x")), (Some(2), Some(1)));
        // Once: a count changed since is not recomputed at the next start.
        let mut m = meta();
        m.event_count = 7;
        db.t.rooms.put(&"!a:x".to_owned(), &Json(m)).unwrap();
        assert!(run(&db.t).unwrap().is_empty());
        assert_eq!(count("!a:x"), Some(7));
        // A database from a newer build is refused.
        set_version(&db.t, SCHEMA_VERSION + 1).unwrap();
        match run(&db.t) {
            Err(StorageError::TooNew { found, supported }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION))
            }
            other => panic!("{other:?}"),
        }
    }
}
