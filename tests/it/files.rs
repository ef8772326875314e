//! Corrupt or foreign files in the data dir (SPEC §10, issue 6): each is a
//! clear startup error that names the file and says what to do, authd exits
//! non-zero, and nothing in the data dir is rewritten.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable};

use crate::support::{authd_cli, redb_only, Server};

/// Every file under `dir` (recursively) with its bytes and mode.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                out.insert(p.clone(), (Vec::new(), mode));
                todo.push(p);
            } else {
                out.insert(p.clone(), (std::fs::read(&p).unwrap(), mode));
            }
        }
    }
    out
}

/// A data dir made by a real first start (users, TLS files, database).
fn initialised() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let s = Server::start_in(&data, &[]);
    assert!(s.stop().success());
    (tmp, data)
}

/// Starts authd on `data`, expecting it to refuse: its stderr, after
/// checking the exit status, that every line of `expected` is in it, and
/// that the data dir is exactly as before.
fn refuses(data: &Path, what: &str, expected: &[&str]) -> String {
    let before = snapshot(data);
    let (status, log) = match Server::try_start_in(data, &[]) {
        Ok(s) => {
            let _ = s.stop();
            panic!("{what}: authd started");
        }
        Err(e) => e,
    };
    let status = status.unwrap_or_else(|| panic!("{what}: authd neither started nor exited:\n{log}"));
    assert!(!status.success(), "{what}: exit status {status}");
    assert_ne!(status.code(), Some(101), "{what}: authd panicked:\n{log}");
    for e in expected {
        assert!(log.contains(e), "{what}: stderr does not say {e:?}:\n{log}");
    }
    assert!(!log.contains("panicked"), "{what}: {log}");
    assert_unchanged(data, &before, what);
    log
}

/// Panics naming every file under `data` that differs from `before`.
fn assert_unchanged(data: &Path, before: &BTreeMap<PathBuf, (Vec<u8>, u32)>, what: &str) {
    let after = snapshot(data);
    let changed: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .map(|p| p.display().to_string())
        .collect();
    assert!(changed.is_empty(), "{what}: these changed: {changed:?}");
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn a_garbage_database_file_is_refused_by_name_and_left_as_it_is() {
    if redb_only("a_garbage_database_file_is_refused_by_name_and_left_as_it_is") {
        return;
    }
    let (_tmp, data) = initialised();
    let db = data.join("authd.redb");
    // Bytes that are not a redb file at all.
    let garbage: Vec<u8> = (0..65_536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    let log = refuses(&data, "garbage authd.redb", &[&show(&db), "backup"]);
    assert!(!log.contains("admin password"), "a new admin was made:\n{log}");

    // The admin CLI on the same dir says the same and changes nothing.
    cli_refuses(&data, &db, &["user", "list"], None);
}

/// Runs the admin CLI on `data`, expecting it to refuse, naming `file`,
/// without a panic, and to leave the data dir exactly as it was.
fn cli_refuses(data: &Path, file: &Path, args: &[&str], stdin: Option<&str>) {
    let before = snapshot(data);
    let out = authd_cli(data, args, stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} on a refused database succeeded");
    assert_ne!(out.status.code(), Some(101), "{args:?} panicked:\n{err}");
    assert!(err.contains(&show(file)), "{args:?}: {err}");
    assert_unchanged(data, &before, &format!("{args:?}"));
}

#[test]
fn a_truncated_database_file_is_refused_by_name_and_left_as_it_is() {
    if redb_only("a_truncated_database_file_is_refused_by_name_and_left_as_it_is") {
        return;
    }
    let (_tmp, data) = initialised();
    let db = data.join("authd.redb");
    let bytes = std::fs::read(&db).unwrap();
    // An empty file too: authd makes a new database under another name and
    // renames it, so no crash leaves an empty authd.redb.
    for keep in [0, 100, 4096, bytes.len() / 2] {
        std::fs::write(&db, &bytes[..keep]).unwrap();
        refuses(&data, &format!("authd.redb cut to {keep} bytes"), &[&show(&db)]);
    }
}

/// authd's `meta` table, where the schema version is stamped.
const META: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");

/// Stamps the stopped data dir's database with schema `version` (checking
/// that it held schema 1, the only one this test knows).
fn stamp_schema(data: &Path, version: u64) {
    let db = redb::Database::open(data.join("authd.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut meta = tx.open_table(META).unwrap();
        let current = meta.get("schema").unwrap().expect("a schema version").value().to_vec();
        assert_eq!(current, 1u64.to_le_bytes(), "this test knows schema 1");
        meta.insert("schema", &version.to_le_bytes()[..]).unwrap();
    }
    tx.commit().unwrap();
}

/// The stopped data dir's schema version.
fn schema_of(data: &Path) -> u64 {
    let db = redb::Database::open(data.join("authd.redb")).unwrap();
    let tx = db.begin_read().unwrap();
    let meta = tx.open_table(META).unwrap();
    let raw = meta.get("schema").unwrap().expect("a schema version").value().to_vec();
    u64::from_le_bytes(raw.try_into().unwrap())
}

#[test]
fn a_database_from_a_newer_schema_is_refused_and_left_as_it_is() {
    if redb_only("a_database_from_a_newer_schema_is_refused_and_left_as_it_is") {
        return;
    }
    let (_tmp, data) = initialised();
    // What a future authd would leave: the same file, a higher version.
    stamp_schema(&data, 99);
    refuses(
        &data,
        "schema 99",
        &[&show(&data.join("authd.redb")), "newer authd", "schema 99", "upgrade authd"],
    );
}

#[tokio::test]
async fn a_database_from_an_older_schema_is_migrated_with_a_log_line_and_keeps_its_data() {
    if redb_only("a_database_from_an_older_schema_is_migrated_with_a_log_line_and_keeps_its_data") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let s = Server::start_in(&data, &[]);
    s.add_user("olga", "olga-password-1", &[]);
    assert!(s.stop().success());
    // What a pre-release build left: schema 0.
    stamp_schema(&data, 0);

    let s = Server::start_in(&data, &[]);
    let log = s.log_text();
    let line = format!("migrated {} from schema 0 to 1", show(&data.join("authd.redb")));
    assert!(log.contains(&line), "no migration line in:\n{log}");
    assert!(!log.contains("admin password"), "a new admin was made:\n{log}");
    let login = s
        .client()
        .post(s.at("/rest/auth/1/session"))
        .json(&serde_json::json!({"username": "olga", "password": "olga-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "the user did not survive the migration");
    assert!(s.stop().success());
    assert_eq!(schema_of(&data), 1, "the file was not re-stamped");

    // The next start finds nothing to migrate.
    let s = Server::start_in(&data, &[]);
    assert!(!s.log_text().contains("migrated"), "{}", s.log_text());
    assert!(s.stop().success());
}

/// A command run with no server migrates an older file as a start would,
/// and says so.
#[test]
fn a_command_that_migrates_an_older_file_says_so() {
    if redb_only("a_command_that_migrates_an_older_file_says_so") {
        return;
    }
    let (_tmp, data) = initialised();
    stamp_schema(&data, 0);
    let out = authd_cli(&data, &["user", "list", "--json"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = format!("note: migrated {} from schema 0 to 1", show(&data.join("authd.redb")));
    assert_eq!(err.matches(&line).count(), 1, "not one migration note in:\n{err}");
    let users: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the JSON list on stdout alone");
    assert_eq!(users[0]["name"], "admin", "{users}");
    assert_eq!(schema_of(&data), 1, "the file was not re-stamped");
    // Nothing is left to migrate.
    let out = authd_cli(&data, &["user", "list"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("migrated"));
}

#[test]
fn a_database_path_that_is_a_directory_is_refused() {
    if redb_only("a_database_path_that_is_a_directory_is_refused") {
        return;
    }
    let (_tmp, data) = initialised();
    let db = data.join("authd.redb");
    std::fs::remove_file(&db).unwrap();
    std::fs::create_dir(&db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o700)).unwrap();
    refuses(&data, "authd.redb is a directory", &[&show(&db)]);
}

#[test]
fn an_unreadable_or_foreign_tls_key_is_refused_by_name_and_left_as_it_is() {
    let (_tmp, data) = initialised();
    let key = data.join("tls/key.pem");
    let original = std::fs::read(&key).unwrap();

    std::fs::write(&key, b"this is not a PEM key\n").unwrap();
    refuses(&data, "key.pem with text in it", &[&show(&key)]);

    std::fs::write(&key, b"").unwrap();
    refuses(&data, "an empty key.pem", &[&show(&key)]);

    // A PEM block of the right kind whose contents are garbage.
    std::fs::write(&key, b"-----BEGIN PRIVATE KEY-----\nAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    refuses(&data, "a garbage PKCS#8 block", &[&show(&key)]);

    // A valid key that does not belong to the certificate.
    let (_other_tmp, other) = initialised();
    std::fs::copy(other.join("tls/key.pem"), &key).unwrap();
    refuses(&data, "another data dir's key", &[&show(&key)]);

    // Unreadable: a directory where the key should be (tests run as root,
    // which permission bits would not stop).
    std::fs::remove_file(&key).unwrap();
    std::fs::create_dir(&key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o700)).unwrap();
    refuses(&data, "key.pem is a directory", &[&show(&key)]);

    // Put back, the same dir starts again with the same certificate.
    std::fs::remove_dir(&key).unwrap();
    std::fs::write(&key, &original).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let s = Server::start_in(&data, &[]);
    assert!(s.stop().success());
    assert_eq!(std::fs::read(&key).unwrap(), original);
}

#[test]
fn a_tls_key_others_can_read_is_refused_with_the_chmod_to_run() {
    let (_tmp, data) = initialised();
    let key = data.join("tls/key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    refuses(&data, "key.pem mode 0644", &[&show(&key), "chmod 600"]);
}

#[test]
fn a_data_dir_others_can_open_is_refused_with_the_chmod_to_run() {
    let (_tmp, data) = initialised();
    for mode in [0o755, 0o770, 0o701] {
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(mode)).unwrap();
        refuses(&data, &format!("data dir mode {mode:03o}"), &[&show(&data), "chmod 700"]);
    }
    // One that holds something that is not authd's.
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    // (Sticky, as /tmp is: a dir that is not authd's keeps every mode bit.)
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o1777)).unwrap();
    refuses(&other, "a non-empty data dir with mode 1777", &[&show(&other), "chmod 700"]);
    let mode = std::fs::metadata(&other).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777, "a refused dir keeps its mode");
}

#[test]
fn an_empty_data_dir_made_beforehand_is_made_private_and_used() {
    // `mkdir db; authd --data db`: nothing in it yet, so it is the first start.
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("open");
    std::fs::create_dir(&fresh).unwrap();
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = Server::start_in(&fresh, &[]);
    assert!(s.log_text().contains("password"), "no admin was made:\n{}", s.log_text());
    assert!(s.stop().success());
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn a_data_path_that_is_a_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    std::fs::write(&data, b"not a directory").unwrap();
    let (status, log) = match Server::try_start_in(&data, &[]) {
        Ok(s) => {
            let _ = s.stop();
            panic!("authd started on a file");
        }
        Err(e) => e,
    };
    assert!(!status.expect("exited").success());
    assert!(log.contains(&show(&data)) && log.contains("not a directory"), "{log}");
    assert_eq!(std::fs::read(&data).unwrap(), b"not a directory");
}

/// Damages the allocator state redb records at a clean close, as the audit's
/// one flipped byte did: in each order's free-page bitmap, byte 1 of the
/// root word is set to 0x35, so the root claims free pages in sub-trees that
/// do not exist. Every page that holds a copy (the live one and stale ones)
/// is changed; returns how many bitmaps were. The file stays a valid redb
/// file in every other respect: header and commit slots are untouched.
fn damage_allocator_state(bytes: &mut [u8]) -> usize {
    let mut damaged = 0;
    for page in bytes.chunks_exact_mut(4096) {
        if let Some(value) = region_allocator(page) {
            damaged += damage_root_words(page, value);
        }
    }
    damaged
}

/// Where in `page` the serialized allocator of region 0 lies, if `page` is
/// a leaf of redb's allocator-state table (fixed 5-byte keys, key
/// `Region(0)` = `[3, 0, 0, 0, 0]`, variable values).
fn region_allocator(page: &[u8]) -> Option<std::ops::Range<usize>> {
    let u32_at = |at: usize| page.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
    if page[0] != 1 {
        return None;
    }
    let pairs = usize::from(u16::from_le_bytes([page[2], page[3]]));
    let keys = 4 + 4 * pairs;
    let values = keys + 5 * pairs;
    (0..pairs).find_map(|i| {
        let key = page.get(keys + 5 * i..keys + 5 * i + 5)?;
        if key != [3, 0, 0, 0, 0] {
            return None;
        }
        let start = if i == 0 { values } else { u32_at(4 + 4 * (i - 1))? };
        let end = u32_at(4 + 4 * i)?;
        (start < end && end <= page.len()).then_some(start..end)
    })
}

/// Sets byte 1 of the root word of each order's bitmap in the buddy
/// allocator serialized at `page[value]` (max order, 3 pad bytes, page
/// count, end offsets; each bitmap: height, level ends, then levels of
/// length + words, root first). Returns how many it changed.
fn damage_root_words(page: &mut [u8], value: std::ops::Range<usize>) -> usize {
    let base = value.start;
    let u32_at = |p: &[u8], at: usize| u32::from_le_bytes(p[at..at + 4].try_into().unwrap()) as usize;
    let max_order = usize::from(page[base]);
    let mut start = 8 + (max_order + 1) * 4;
    let mut changed = 0;
    for order in 0..=max_order {
        let end = u32_at(page, base + 8 + order * 4);
        let height = u32_at(page, base + start);
        let root = base + start + 4 + 4 * height; // the root level: its length, then its first word
        if height > 0 && root + 4 + 8 <= base + end && base + end <= value.end {
            page[root + 4 + 1] = 0x35;
            changed += 1;
        }
        start = end;
    }
    changed
}

#[test]
fn a_database_with_a_damaged_allocator_state_is_refused_by_name_and_left_as_it_is() {
    if redb_only("a_database_with_a_damaged_allocator_state_is_refused_by_name_and_left_as_it_is") {
        return;
    }
    let (_tmp, data) = initialised();
    let db = data.join("authd.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(damage_allocator_state(&mut bytes) > 0, "no allocator state found in {}", show(&db));
    std::fs::write(&db, &bytes).unwrap();
    // redb's own read-only open finds nothing wrong with such a file.
    assert!(redb::ReadOnlyDatabase::open(&db).is_ok());

    let log = refuses(&data, "authd.redb with a damaged allocator state", &[&show(&db), "backup"]);
    assert!(!log.contains("admin password"), "a new admin was made:\n{log}");

    cli_refuses(&data, &db, &["user", "list"], None);
    cli_refuses(&data, &db, &["user", "add", "zoe", "--password-stdin"], Some("zoe-password-123\n"));
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
}

/// A damaged table definition (a key type name no longer UTF-8) made redb panic
/// while other tables of the opening transaction were open; their drops
/// panicked again and the process aborted with no word of the file. It is
/// refused by name now, and left as it is.
#[test]
fn a_database_with_a_damaged_table_definition_is_refused_by_name() {
    if redb_only("a_database_with_a_damaged_table_definition_is_refused_by_name") {
        return;
    }
    let (_tmp, data) = initialised();
    let db = data.join("authd.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    // The first table definition keyed by `[u8; 16]` (sessions, series, ...).
    let type_name = b"[u8;16]";
    let at = (0..bytes.len() - type_name.len())
        .find(|&at| &bytes[at..at + type_name.len()] == type_name)
        .unwrap_or_else(|| panic!("no table definition with a [u8;16] key in {}", show(&db)));
    bytes[at + 1] ^= 0xff;
    std::fs::write(&db, &bytes).unwrap();
    refuses(&data, "authd.redb with a damaged table definition", &[&show(&db), "damaged", "backup"]);
}

/// SPEC §10: a damaged page in a cleanly closed file. redb reads a page's
/// checksum only in a repair or an integrity check, so such a file used to
/// start and then fail the requests that reached the page (a login got a
/// 500), or be rewritten on its way to an error. For each of the first pages in turn,
/// authd now either refuses by name, leaving the data dir as it was, or
/// starts and works (the page was not in use).
#[tokio::test]
async fn a_damaged_page_is_refused_at_start_or_harmless() {
    if redb_only("a_damaged_page_is_refused_at_start_or_harmless") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("db");
    let db = data.join("authd.redb");
    let s = Server::start_in(&data, &[]);
    let pw = s.admin_pw();
    for remember in [false, true, false, true, false, true] {
        let r = s
            .bare_client()
            .post(s.at("/rest/auth/1/session"))
            .json(&serde_json::json!({ "username": "admin", "password": pw, "rememberMe": remember }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(s.stop_async().await.success());
    let pristine = std::fs::read(&db).unwrap();
    let (mut refused, mut harmless) = (0, 0);
    for page in 1..16usize {
        let mut bytes = pristine.clone();
        let mut x = page as u32;
        for b in &mut bytes[page * 4096 + 64..page * 4096 + 576] {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *b = (x >> 16) as u8;
        }
        std::fs::write(&db, &bytes).unwrap();
        let before = snapshot(&data);
        match Server::try_start_in(&data, &[]) {
            Ok(s) => {
                let what = format!("page {page} damaged, authd started");
                let c = s.client();
                assert_eq!(s.login(&c, "admin", &pw).await.status(), 200, "{what}");
                // Every table read: users, sessions (with the one just made).
                for path in
                    ["/rest/auth/1/session", "/rest/authd/1/admin/users", "/rest/authd/1/admin/sessions"]
                {
                    let r = c.get(s.at(path)).send().await.unwrap();
                    assert_eq!(r.status(), 200, "{what}: {path}");
                }
                let stopped = s.stop_async().await;
                assert!(stopped.success(), "{what}: unclean stop");
                harmless += 1;
            }
            Err((status, log)) => {
                let what = format!("page {page} damaged, authd refused");
                assert!(
                    status.is_some_and(|s| !s.success() && s.code() != Some(101)),
                    "{what}: {status:?}\n{log}"
                );
                assert!(log.contains(&show(&db)) && log.contains("backup"), "{what}:\n{log}");
                assert_unchanged(&data, &before, &what);
                refused += 1;
            }
        }
    }
    // Both kinds occur in a file this small; a change in redb's layout that
    // made either vanish would make this test say less.
    assert!(refused > 0 && harmless > 0, "refused {refused}, harmless {harmless}");
}
