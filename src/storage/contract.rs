//! What every engine behind [`KvEngine`](super::engine::KvEngine) must do, checked on each: the
//! concern modules rely on exactly this and nothing engine-specific.

use std::path::Path;

use super::{Batch, EngineKind, Storage, StorageError};

fn open(kind: EngineKind, dir: &Path) -> std::sync::Arc<Storage> {
    Storage::open_engine(kind, dir, 1 << 20).expect("open")
}

fn keys(it: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StorageError>>) -> Vec<Vec<u8>> {
    it.map(|r| r.expect("read").0).collect()
}

fn reads_writes_and_orders(kind: EngineKind) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(kind, dir.path());
    let t = db.engine.open_tree("contract").unwrap();
    assert!(t.is_empty());
    t.put(b"b", b"2").unwrap();
    t.put(b"a", b"1").unwrap();
    assert_eq!(t.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert!(
        !t.insert_new(b"a", b"x").unwrap(),
        "a key with a value is kept"
    );
    assert_eq!(t.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert!(t.insert_new(b"c", b"3").unwrap());
    let mut batch = Batch::default();
    batch.put(b"ab".to_vec(), b"12".to_vec());
    batch.remove(b"b".to_vec());
    t.apply_batch(batch).unwrap();
    assert_eq!(t.get(b"b").unwrap(), None);
    assert_eq!(
        keys(t.range(b"a", b"c", false)),
        [b"a".to_vec(), b"ab".to_vec()]
    );
    assert_eq!(
        keys(t.range(b"a", b"d", true)),
        [b"c".to_vec(), b"ab".to_vec(), b"a".to_vec()]
    );
    assert_eq!(keys(t.scan_prefix(b"a")), [b"a".to_vec(), b"ab".to_vec()]);
    assert_eq!(t.len(), 3);
    t.remove(b"a").unwrap();
    assert_eq!(t.len(), 2);
    assert!(db
        .usage()
        .unwrap()
        .iter()
        .any(|u| u.name == "contract" && u.entries == 2));
}

fn insert_new_is_one_step_under_concurrency(kind: EngineKind) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(kind, dir.path());
    let t = db.engine.open_tree("once").unwrap();
    let won: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8u8)
            .map(|i| {
                let t = &t;
                s.spawn(move || {
                    (0..200u32)
                        .filter(|k| t.insert_new(&k.to_be_bytes(), &[i]).unwrap())
                        .count()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(won, 200, "each key is won exactly once");
}

fn flushed_writes_survive_reopening(kind: EngineKind) {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(kind, dir.path());
        let t = db.engine.open_tree("kept").unwrap();
        for i in 0..1_000u32 {
            t.put(&i.to_be_bytes(), &[7; 100]).unwrap();
        }
        db.flush_blocking().unwrap();
    }
    let db = open(kind, dir.path());
    assert_eq!(db.engine.open_tree("kept").unwrap().len(), 1_000);
}

fn snapshots_and_compaction_keep_what_is_live(kind: EngineKind) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(kind, dir.path());
    let t = db.engine.open_tree("purged").unwrap();
    let secret = b"a message that was purged";
    for i in 0..500u32 {
        t.put(&i.to_be_bytes(), secret).unwrap();
    }
    t.put(b"kept", b"live").unwrap();
    db.flush_blocking().unwrap();
    for i in 0..500u32 {
        t.remove(&i.to_be_bytes()).unwrap();
    }
    assert_eq!(
        db.compact().unwrap(),
        db.usage().unwrap().iter().map(|u| u.entries).sum::<u64>()
    );
    // The handle opened before the compaction reads and writes the fresh files.
    assert_eq!(t.get(b"kept").unwrap().as_deref(), Some(&b"live"[..]));
    t.put(b"after", b"1").unwrap();
    db.flush_blocking().unwrap();
    let on_disk = files_containing(dir.path(), secret);
    assert!(
        on_disk.is_empty(),
        "purged data still on disk in {on_disk:?}"
    );
    let copy = tempfile::tempdir().unwrap();
    db.snapshot_to(copy.path()).unwrap();
    drop((t, db));
    let restored = open(kind, copy.path());
    let t = restored.engine.open_tree("purged").unwrap();
    assert_eq!(
        keys(t.scan_prefix(b"")),
        [b"after".to_vec(), b"kept".to_vec()]
    );
}

/// Files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                found.push(p);
            }
        }
    }
    found
}

fn the_other_engines_directory_is_refused(kind: EngineKind) {
    let dir = tempfile::tempdir().unwrap();
    drop(open(kind, dir.path()));
    let other = match kind {
        EngineKind::Sled => EngineKind::Fjall,
        _ => EngineKind::Sled,
    };
    let err = Storage::open_engine(other, dir.path(), 1 << 20)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("database.engine"), "{err}");
    // Left to choose, the server opens the directory with the engine that wrote it.
    let db = Storage::open_engine(EngineKind::Auto, dir.path(), 1 << 20).unwrap();
    assert!(
        !db.engine.open_tree("meta").unwrap().is_empty(),
        "the existing database"
    );
}

macro_rules! on_each_engine {
    ($($check:ident),*) => {
        mod sled {
            $(#[tokio::test(flavor = "multi_thread")] async fn $check() { super::$check(super::EngineKind::Sled) })*
        }
        mod fjall {
            $(#[tokio::test(flavor = "multi_thread")] async fn $check() { super::$check(super::EngineKind::Fjall) })*
        }
    };
}

on_each_engine!(
    reads_writes_and_orders,
    insert_new_is_one_step_under_concurrency,
    flushed_writes_survive_reopening,
    snapshots_and_compaction_keep_what_is_live,
    the_other_engines_directory_is_refused
);
