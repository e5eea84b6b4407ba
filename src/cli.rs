//! Operator commands of the `haven` binary. They work on a stopped server (the command opens
//! the database itself) and on a running one (the database allows one process at a time, so
//! the command is handed to the server through `admin.sock` in its database directory, a Unix
//! socket only the server's own account may use).

use std::path::PathBuf;

use ruma::{OwnedRoomId, UserId};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::{config::Config, error::Error, signing::ServerKey, Haven};

/// The commands, for `--help`.
pub const COMMANDS: &str = "\
  create-user LOCALPART [--password P] [--admin]   create an account
  reset-password USER PASSWORD                     set a password; the user's devices are logged out
  deactivate USER                                  end an account (it leaves its rooms)
  list-users                                       every account
  list-rooms                                       every room, with member and event counts
  create-registration-token [--token T] [--uses N] [--expires-ms MS]
  list-registration-tokens
  revoke-registration-token TOKEN
  signing-key                                      the server's signing key id and public key
  check                                            read every table and report their sizes
  compact                                          rewrite the database into fresh files (server stopped)
  export-room ROOM_ID                              a room's full history as JSON, with redacted originals
  backup DIR                                       a consistent copy of the database and media (writes pause meanwhile)
  restore DIR                                      replace the database and media with a backup (server stopped)
  rotate-signing-key                               replace the signing key (server stopped)";

/// The socket a running server takes commands on.
pub fn socket_path(config: &Config) -> PathBuf {
    config.database.path.join("admin.sock")
}

/// Runs `command`: through the running server when there is one, else on the database.
pub async fn run(config: Config, command: &str, args: &[String]) -> Result<String, Error> {
    let offline_only = matches!(command, "rotate-signing-key" | "restore" | "compact");
    if let Ok(stream) = tokio::net::UnixStream::connect(socket_path(&config)).await {
        if offline_only {
            return Err(Error::invalid_param(format!(
                "the server is running: stop it first ({command})"
            )));
        }
        return ask_server(stream, command, args).await;
    }
    if command == "compact" {
        parse(args).exactly(0, "compact")?;
        return compact(&config);
    }
    if command == "restore" {
        let a = parse(args);
        a.exactly(1, "restore DIR")?;
        return restore(&config, std::path::Path::new(a.positional[0])).await;
    }
    if command == "rotate-signing-key" {
        let db = open_storage(&config)?;
        let (old, new) = ServerKey::rotate(&db, config.server_name.clone())?;
        return Ok(format!(
            "signing key {new} replaces {old}; {old} stays published as expired so that \
             what it signed can still be verified"
        ));
    }
    let h = Haven::open(config).map_err(|e| {
        Error::internal(format!(
            "cannot open the database (is another haven process using it?): {e}"
        ))
    })?;
    let out = execute(&h, command, args).await;
    h.db.flush_blocking()?;
    out
}

fn open_storage(config: &Config) -> Result<std::sync::Arc<crate::storage::Storage>, Error> {
    crate::storage::Storage::open_engine(
        config.database.engine,
        &config.database.path,
        config.database.cache_mb * 1024 * 1024,
    )
    .map_err(|e| {
        Error::internal(format!(
            "cannot open the database at {} (is the server running?): {e}",
            config.database.path.display()
        ))
    })
}

async fn ask_server(
    stream: tokio::net::UnixStream,
    command: &str,
    args: &[String],
) -> Result<String, Error> {
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(&json!({ "command": command, "args": args }))
        .map_err(Error::internal)?;
    line.push(b'\n');
    write.write_all(&line).await.map_err(Error::internal)?;
    let mut answer = String::new();
    BufReader::new(read)
        .read_line(&mut answer)
        .await
        .map_err(Error::internal)?;
    let v: Value = serde_json::from_str(&answer)
        .map_err(|_| Error::internal("the server's answer was not understood"))?;
    match v["ok"].as_bool() {
        Some(true) => Ok(v["output"].as_str().unwrap_or_default().to_owned()),
        _ => Err(Error::internal(
            v["error"]
                .as_str()
                .unwrap_or("the server refused the command"),
        )),
    }
}

/// Serves commands on `admin.sock` for as long as the server runs.
pub fn serve(h: std::sync::Arc<Haven>) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(&h.config);
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| Error::internal(format!("cannot bind {}: {e}", path.display())))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(Error::internal)?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let h = h.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                if BufReader::new(read).read_line(&mut line).await.is_err() {
                    return;
                }
                let answer = match serde_json::from_str::<Value>(&line) {
                    Ok(req) => {
                        let command = req["command"].as_str().unwrap_or_default().to_owned();
                        let args: Vec<String> = req["args"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|a| a.as_str().map(str::to_owned))
                            .collect();
                        tracing::info!(command = %command, "operator command");
                        match execute(&h, &command, &args).await {
                            Ok(out) => json!({ "ok": true, "output": out }),
                            Err(e) => json!({ "ok": false, "error": e.to_string() }),
                        }
                    }
                    Err(_) => json!({ "ok": false, "error": "not a command" }),
                };
                let mut bytes = serde_json::to_vec(&answer).unwrap_or_default();
                bytes.push(b'\n');
                let _ = write.write_all(&bytes).await;
            });
        }
    });
    Ok(())
}

/// `--name value` options and the remaining positional arguments.
struct Args<'a> {
    positional: Vec<&'a str>,
    options: Vec<(&'a str, Option<&'a str>)>,
}

fn parse(args: &[String]) -> Args<'_> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        match a.strip_prefix("--") {
            Some(name) if name == "admin" => options.push((name, None)),
            Some(name) => options.push((name, it.next().map(String::as_str))),
            None => positional.push(a.as_str()),
        }
    }
    Args {
        positional,
        options,
    }
}

impl Args<'_> {
    fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| *v)
    }

    fn flag(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| *n == name)
    }

    fn number(&self, name: &str) -> Result<Option<u64>, Error> {
        self.option(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::invalid_param(format!("--{name} takes a number")))
            })
            .transpose()
    }

    fn exactly(&self, n: usize, usage: &str) -> Result<(), Error> {
        if self.positional.len() == n {
            Ok(())
        } else {
            Err(Error::invalid_param(format!("usage: haven {usage}")))
        }
    }
}

fn local_user(h: &Haven, user: &str) -> Result<ruma::OwnedUserId, Error> {
    let user = if user.starts_with('@') {
        UserId::parse(user).map_err(|_| Error::invalid_param("invalid user ID"))?
    } else {
        h.users.user_id_for(user)?
    };
    if user.server_name() != h.config.server_name || !h.users.exists(&user)? {
        return Err(Error::not_found(format!(
            "no account {user} on this server"
        )));
    }
    Ok(user)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Runs one command on `h` (in the server, or in this process on a stopped server's data).
pub async fn execute(h: &Haven, command: &str, args: &[String]) -> Result<String, Error> {
    let a = parse(args);
    let out = match command {
        "create-user" => {
            a.exactly(1, "create-user LOCALPART [--password P] [--admin]")?;
            let user = h.users.user_id_for(a.positional[0])?;
            if h.users.exists(&user)? {
                return Err(Error::invalid_param(format!("{user} exists already")));
            }
            h.users
                .create(&user, a.option("password"), a.flag("admin"))
                .await?;
            format!(
                "created {user}{}",
                if a.flag("admin") { " (admin)" } else { "" }
            )
        }
        "reset-password" => {
            a.exactly(2, "reset-password USER PASSWORD")?;
            let user = local_user(h, a.positional[0])?;
            h.users.set_password(&user, a.positional[1]).await?;
            h.users.delete_devices_except(&user, None)?;
            format!("password of {user} set; its devices are logged out")
        }
        "deactivate" => {
            a.exactly(1, "deactivate USER")?;
            let user = local_user(h, a.positional[0])?;
            crate::admin::deactivate_account(h, &user).await?;
            format!("{user} deactivated")
        }
        "list-users" => {
            a.exactly(0, "list-users")?;
            let (users, _) = crate::admin::list_users(h, None, usize::MAX)?;
            users
                .iter()
                .map(|u| {
                    let mut flags = Vec::new();
                    for f in ["admin", "deactivated", "locked", "suspended"] {
                        if u[f] == true {
                            flags.push(f);
                        }
                    }
                    format!(
                        "{}{}",
                        u["user_id"].as_str().unwrap_or_default(),
                        if flags.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", flags.join(", "))
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        "list-rooms" => {
            a.exactly(0, "list-rooms")?;
            let (rooms, _) = crate::admin::rooms::list(h, None, usize::MAX)?;
            rooms
                .iter()
                .map(|r| {
                    format!(
                        "{}\t{}\t{} members\t{} events{}",
                        r["room_id"].as_str().unwrap_or_default(),
                        r["name"].as_str().unwrap_or("-"),
                        r["joined_members"],
                        r["events"],
                        if r["blocked"] == true {
                            "\tblocked"
                        } else {
                            ""
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        "create-registration-token" => {
            a.exactly(
                0,
                "create-registration-token [--token T] [--uses N] [--expires-ms MS]",
            )?;
            let t = crate::admin::create_registration_token(
                h,
                a.option("token").map(str::to_owned),
                a.number("uses")?,
                a.number("expires-ms")?,
            )?;
            t["token"].as_str().unwrap_or_default().to_owned()
        }
        "list-registration-tokens" => {
            a.exactly(0, "list-registration-tokens")?;
            pretty(&json!(crate::admin::registration_tokens(h)?))
        }
        "revoke-registration-token" => {
            a.exactly(1, "revoke-registration-token TOKEN")?;
            if !crate::admin::revoke_registration_token(h, a.positional[0])? {
                return Err(Error::not_found("no such registration token"));
            }
            "revoked".to_owned()
        }
        "signing-key" => {
            a.exactly(0, "signing-key")?;
            format!("{} {}", h.key.key_id(), h.key.public_key_base64())
        }
        "check" => {
            a.exactly(0, "check")?;
            check(h)?
        }
        "export-room" => {
            a.exactly(1, "export-room ROOM_ID")?;
            let room = OwnedRoomId::try_from(a.positional[0])
                .map_err(|_| Error::invalid_param("invalid room ID"))?;
            pretty(&export_room(h, &room)?)
        }
        "backup" => {
            a.exactly(1, "backup DIR")?;
            backup(h, std::path::Path::new(a.positional[0])).await?
        }
        other => {
            return Err(Error::invalid_param(format!(
                "unknown command {other}; `haven --help` lists them"
            )))
        }
    };
    h.db.durable().await?;
    Ok(out)
}

/// Reads every table entry (each must decode) and reports counts.
fn check(h: &Haven) -> Result<String, Error> {
    let t = &h.db.t;
    let mut lines = vec![format!(
        "schema version {}",
        h.db.meta_u64("schema_version")?
    )];
    let mut count =
        |name: &str, n: Result<usize, crate::storage::StorageError>| -> Result<(), Error> {
            lines.push(format!("{name}: {}", n?));
            Ok(())
        };
    fn all<I, T>(it: I) -> Result<usize, crate::storage::StorageError>
    where
        I: Iterator<Item = Result<T, crate::storage::StorageError>>,
    {
        let mut n = 0;
        for item in it {
            item?;
            n += 1;
        }
        Ok(n)
    }
    count("users", all(t.users.scan_prefix(&[])))?;
    count("devices", all(t.devices.scan_prefix(&[])))?;
    count("rooms", all(t.rooms.scan_prefix(&[])))?;
    count("events", all(t.pdus.scan_prefix(&[])))?;
    count("timeline entries", all(t.timeline.scan_prefix(&[])))?;
    count("backfilled entries", all(t.backfill.scan_prefix(&[])))?;
    count("state entries", all(t.current_state.scan_prefix(&[])))?;
    count("memberships", all(t.room_members.scan_prefix(&[])))?;
    count("media", all(t.media.scan_prefix(&[])))?;
    count("federation queue", all(t.federation_queue.scan_prefix(&[])))?;
    count("audit entries", all(t.audit_log.scan_prefix(&[])))?;
    // Every timeline entry must name a stored event.
    let mut missing = 0;
    for item in t.timeline.scan_prefix(&[]) {
        let (_, entry) = item?;
        if !t.pdus.contains(&entry.event_id)? {
            missing += 1;
        }
    }
    lines.push(format!("timeline entries without their event: {missing}"));
    lines.push(format!("size on disk: {} bytes", h.db.size_on_disk()?));
    // Where the space goes: the live bytes of each table, against the size on disk.
    for u in h.db.usage()? {
        lines.push(format!(
            "table {}: {} entries, {} key bytes, {} value bytes",
            u.name, u.entries, u.key_bytes, u.value_bytes
        ));
    }
    lines.push(if missing == 0 { "ok" } else { "PROBLEMS FOUND" }.to_owned());
    Ok(lines.join("\n"))
}

/// A room's whole history for a legal request: backfilled history then the live timeline,
/// each event as stored with, for redacted ones, the original as it was sent.
pub fn export_room(h: &Haven, room: &ruma::RoomId) -> Result<Value, Error> {
    h.rooms.meta_or_404(room)?;
    let mut events = Vec::new();
    let mut add = |id: &str| -> Result<(), Error> {
        let Ok(id) = ruma::EventId::parse(id) else {
            return Ok(());
        };
        let Some(pdu) = h.rooms.get_pdu(&id)? else {
            return Ok(());
        };
        let mut e: Value = serde_json::from_str(pdu.json.get()).map_err(Error::internal)?;
        e["event_id"] = json!(id);
        let mut entry = json!({ "event": e });
        if let Some(orig) = h.db.t.redacted_originals.get(&id.to_string())? {
            let o: Value = serde_json::from_slice(&orig).map_err(Error::internal)?;
            entry["redacted_original"] = o;
        }
        events.push(entry);
        Ok(())
    };
    let mut older = h.rooms.backfilled_range(room, 0, usize::MAX, true)?;
    older.reverse();
    for (_, p) in older {
        add(p.event_id.as_str())?;
    }
    for (_, entry) in h.rooms.timeline_entries(room, 0, u64::MAX, usize::MAX)? {
        add(&entry.event_id)?;
    }
    Ok(json!({
        "room_id": room,
        "exported_ts": crate::util::now_ms(),
        "exported_by": h.config.server_name,
        "events": events,
    }))
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(to)?;
    let mut n = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            n += copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            n += 1;
        }
    }
    Ok(n)
}

/// `backup DIR`: the database as of one moment (writers wait while it is copied), then the
/// media files, and a description of the backup.
async fn backup(h: &Haven, dir: &std::path::Path) -> Result<String, Error> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(Error::internal)?
            .next()
            .is_some()
    {
        return Err(Error::invalid_param(format!(
            "{} exists and is not empty",
            dir.display()
        )));
    }
    let start = std::time::Instant::now();
    let db_dir = dir.join("db");
    let entries = {
        let db = h.db.clone();
        let target = db_dir.clone();
        tokio::task::spawn_blocking(move || db.snapshot_to(&target))
            .await
            .map_err(Error::internal)??
    };
    let paused = start.elapsed();
    let media_dir = h.media.dir().to_owned();
    let target = dir.join("media");
    let files = tokio::task::spawn_blocking(move || copy_dir(&media_dir, &target))
        .await
        .map_err(Error::internal)?
        .map_err(Error::internal)?;
    let about = json!({
        "server_name": h.config.server_name,
        "created_ms": crate::util::now_ms(),
        "schema_version": h.db.meta_u64("schema_version")?,
        "entries": entries,
        "media_files": files,
    });
    std::fs::write(dir.join("backup.json"), pretty(&about)).map_err(Error::internal)?;
    Ok(format!(
        "backup in {}: {entries} database entries (writes paused {:.2} s), {files} media files",
        dir.display(),
        paused.as_secs_f64()
    ))
}

/// `restore DIR`: checks the backup, moves the current database (and media) aside, and puts
/// the backup's in their place.
async fn restore(config: &Config, dir: &std::path::Path) -> Result<String, Error> {
    let about: Value = std::fs::read(dir.join("backup.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| Error::invalid_param(format!("{} is not a Haven backup", dir.display())))?;
    if about["server_name"] != config.server_name.as_str() {
        return Err(Error::invalid_param(format!(
            "the backup is of {}, this server is {}",
            about["server_name"], config.server_name
        )));
    }
    // The backup must open with this version of Haven (not from a newer one).
    drop(open_storage(&Config {
        database: crate::config::Database {
            path: dir.join("db"),
            ..config.database.clone()
        },
        ..config.clone()
    })?);
    let data = &config.database.path;
    let media = config
        .media
        .path
        .clone()
        .unwrap_or_else(|| data.join("media"));
    let aside = |p: &std::path::Path| -> Result<Option<PathBuf>, Error> {
        if !p.exists() {
            return Ok(None);
        }
        let mut name = p.as_os_str().to_owned();
        name.push(format!(".before-restore-{}", crate::util::now_ms()));
        let to = PathBuf::from(name);
        std::fs::rename(p, &to).map_err(Error::internal)?;
        Ok(Some(to))
    };
    let old_data = aside(data)?;
    let old_media = if media.starts_with(data) {
        None
    } else {
        aside(&media)?
    };
    copy_dir(&dir.join("db"), data).map_err(Error::internal)?;
    let _ = std::fs::remove_file(data.join("admin.sock"));
    copy_dir(&dir.join("media"), &media).map_err(Error::internal)?;
    Ok(format!(
        "restored the backup of {} taken at {} ms; the replaced data is in {}{}",
        about["server_name"],
        about["created_ms"],
        old_data.map_or("(none)".into(), |p| p.display().to_string()),
        old_media.map_or(String::new(), |p| format!(" and {}", p.display()))
    ))
}

/// `compact`: the database copied into fresh files (leaving out the space the engine keeps for
/// overwritten data) and put in place; the old files are kept aside until the operator removes
/// them.
fn compact(config: &Config) -> Result<String, Error> {
    let data = &config.database.path;
    let db = open_storage(config)?;
    let before = db.size_on_disk()?;
    let mut fresh = data.as_os_str().to_owned();
    fresh.push(".compacting");
    let fresh = PathBuf::from(fresh);
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).map_err(Error::internal)?;
    }
    let entries = db.snapshot_to(&fresh)?;
    let mut old = data.as_os_str().to_owned();
    old.push(format!(".before-compact-{}", crate::util::now_ms()));
    let old = PathBuf::from(old);
    std::fs::rename(data, &old).map_err(Error::internal)?;
    std::fs::rename(&fresh, data).map_err(Error::internal)?;
    // Media kept inside the data directory moves along.
    let media = old.join("media");
    if config.media.path.is_none() && media.exists() {
        std::fs::rename(&media, data.join("media")).map_err(Error::internal)?;
    }
    let after = dir_size(data.as_path()).unwrap_or(0);
    Ok(format!(
        "{entries} entries rewritten: {before} -> {after} bytes; the old files are in {} \
         (remove them once the server runs well)",
        old.display()
    ))
}

fn dir_size(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        n += if entry.file_type()?.is_dir() {
            if entry.file_name() == "media" {
                0
            } else {
                dir_size(&entry.path())?
            }
        } else {
            entry.metadata()?.len()
        };
    }
    Ok(n)
}
