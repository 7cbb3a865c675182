//! What a test checks of a node's storage, whichever backend: job
//! records, files (kept, pieces, hashes), the settled state after a run,
//! and the ways a test reaches behind a node's back (ageing a job,
//! removing a file).

use super::*;

/// The kinds of stored file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Files {
    Videos,
    Audio,
    Waveforms,
    /// A split job's segments' audio, until they are joined.
    Segments,
    /// Their waveforms.
    SegmentWaveforms,
}

impl Files {
    /// The GridFS bucket's name (its collections' prefix).
    fn gridfs_bucket(self) -> &'static str {
        match self {
            Files::Segments => "segments",
            Files::SegmentWaveforms => "segment_waveforms",
            _ => "fs",
        }
    }
}

impl Node {
    /// The raw job records of the group, as JSON with the stored field
    /// names (`_id`, `state`, `node`, `attempts`, ...; ids as hex).
    pub async fn job_records(&self) -> Vec<Value> {
        match self.options.backend {
            Backend::Cluster => self
                .documents(&self.names.jobs_db, "jobs")
                .await
                .into_iter()
                .map(|d| {
                    let mut json = Bson::Document(d).into_relaxed_extjson();
                    // ObjectIds as their hex, as the embedded rows hold them.
                    if let Some(fields) = json.as_object_mut() {
                        for value in fields.values_mut() {
                            if let Some(oid) = value["$oid"].as_str().map(str::to_owned) {
                                *value = oid.into();
                            }
                        }
                    }
                    json
                })
                .collect(),
            Backend::Embedded => self.sql_rows(
                "SELECT json_object('_id', id, 'state', state, 'node', node, \
                 'attempts', attempts, 'owner', owner, 'mailed', mailed, \
                 'notified', notified) FROM jobs",
            ),
        }
    }

    /// Rows of one JSON column from the embedded node's database.
    fn sql_rows(&self, sql: &str) -> Vec<Value> {
        let db = self.sqlite();
        let mut statement = db.prepare(sql).expect("prepare");
        let rows = statement
            .query_map([], |row| row.get::<_, String>(0))
            .expect("query");
        rows.map(|r| serde_json::from_str(&r.expect("row")).expect("json"))
            .collect()
    }

    /// A connection to the embedded node's database (beside the node).
    pub fn sqlite(&self) -> rusqlite::Connection {
        let db = rusqlite::Connection::open(self.names.data_dir.join("vidaud.db"))
            .expect("open vidaud.db");
        db.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        db
    }

    /// Runs `sql` on the user directory by hand, as an operator would:
    /// the embedded node's SQLite, or the cluster's MySQL (the `mysql`
    /// client, as root over loopback).
    pub fn users_sql(&self, sql: &str) {
        match self.options.backend {
            Backend::Embedded => {
                self.sqlite().execute_batch(sql).expect("users sql");
            }
            Backend::Cluster => {
                let status = Command::new("mysql")
                    .args(["-uroot", "-h127.0.0.1", "-P3306", "vidaud_test", "-e", sql])
                    .status()
                    .expect("run the mysql client");
                assert!(status.success(), "mysql: {sql}");
            }
        }
    }

    /// Runs one statement on the embedded node's database.
    pub fn sql_scalar(&self, sql: &str) -> i64 {
        self.sqlite()
            .query_row(sql, [], |row| row.get(0))
            .expect("sql")
    }

    /// Files of a kind stored (finished), whichever backend.
    pub async fn count_files(&self, files: Files) -> u64 {
        match self.options.backend {
            Backend::Cluster => {
                let collection = format!("{}.files", files.gridfs_bucket());
                self.count(self.files_db(files), &collection).await
            }
            Backend::Embedded => self.sql_scalar(&format!(
                "SELECT COUNT(*) FROM files WHERE bucket = '{}'",
                embedded_bucket(files)
            )) as u64,
        }
    }

    /// Job records of the group (deleted ones included), whichever backend.
    pub async fn count_jobs(&self) -> u64 {
        match self.options.backend {
            Backend::Cluster => self.count(&self.names.jobs_db, "jobs").await,
            Backend::Embedded => self.sql_scalar("SELECT COUNT(*) FROM jobs") as u64,
        }
    }

    /// Makes a job look `days` older (for the retention sweep).
    pub async fn age_job(&self, job_id: &str, days: i64) {
        let shift = days * 86_400_000;
        match self.options.backend {
            Backend::Cluster => {
                let oid = mongodb::bson::oid::ObjectId::parse_str(job_id).expect("oid");
                let old = mongodb::bson::DateTime::from_millis(
                    mongodb::bson::DateTime::now().timestamp_millis() - shift,
                );
                self.mongo()
                    .await
                    .database(&self.names.jobs_db)
                    .collection::<Document>("jobs")
                    .update_one(doc! { "_id": oid }, doc! { "$set": { "created_at": old } })
                    .await
                    .expect("age the job");
            }
            Backend::Embedded => {
                self.sqlite()
                    .execute(
                        "UPDATE jobs SET created_at = created_at - ?2 WHERE id = ?1",
                        rusqlite::params![job_id, shift],
                    )
                    .expect("age the job");
            }
        }
    }

    fn files_db(&self, files: Files) -> &str {
        match files {
            Files::Videos => &self.names.videos_db,
            Files::Audio => &self.names.mp3s_db,
            Files::Waveforms => &self.names.waveforms_db,
            Files::Segments | Files::SegmentWaveforms => &self.names.mp3s_db,
        }
    }

    /// A split job's segment records (of every job), whichever backend.
    pub async fn count_segment_records(&self) -> u64 {
        match self.options.backend {
            Backend::Cluster => self.count(&self.names.jobs_db, "segments").await,
            Backend::Embedded => self.sql_scalar("SELECT COUNT(*) FROM segments") as u64,
        }
    }

    /// Messages ready in one of the group's queues, whichever backend.
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        match self.options.backend {
            Backend::Cluster => queue_depth(queue).await,
            // The embedded queue keeps the settings' names too.
            Backend::Embedded => self.sql_scalar(&format!(
                "SELECT COUNT(*) FROM messages WHERE queue = '{queue}' AND held_by IS NULL"
            )) as u32,
        }
    }

    pub async fn mongo(&self) -> mongodb::Client {
        let port = self.options.mongo_port.unwrap_or_else(mongo_port);
        mongodb::Client::with_uri_str(format!("mongodb://127.0.0.1:{port}"))
            .await
            .expect("mongodb client")
    }

    async fn documents(&self, db: &str, collection: &str) -> Vec<Document> {
        self.fields(db, collection, None).await
    }

    /// The documents of `db.collection`, reduced to `projection` when given
    /// (chunks are 255 KiB each: fetch only what is looked at).
    async fn fields(
        &self,
        db: &str,
        collection: &str,
        projection: Option<Document>,
    ) -> Vec<Document> {
        use futures::TryStreamExt;
        let collection = self
            .mongo()
            .await
            .database(db)
            .collection::<Document>(collection);
        let mut find = collection.find(doc! {});
        if let Some(projection) = projection {
            find = find.projection(projection);
        }
        find.await
            .expect("find")
            .try_collect()
            .await
            .expect("cursor")
    }

    /// Documents in `db.collection` (e.g. `fs.files`, `fs.chunks`).
    pub async fn count(&self, db: &str, collection: &str) -> u64 {
        self.mongo()
            .await
            .database(db)
            .collection::<Document>(collection)
            .count_documents(doc! {})
            .await
            .expect("count")
    }

    /// The SHA-256 (hex) of stored file `id` (hex), read from the storage
    /// itself, whichever backend.
    pub async fn stored_sha256(&self, files: Files, id: &str) -> String {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        match self.options.backend {
            Backend::Cluster => {
                use futures::AsyncReadExt;
                let oid = mongodb::bson::oid::ObjectId::parse_str(id).expect("oid");
                let bucket = self
                    .mongo()
                    .await
                    .database(self.files_db(files))
                    .gridfs_bucket(None);
                let mut stream = bucket
                    .open_download_stream(Bson::ObjectId(oid))
                    .await
                    .expect("open the stored file");
                let mut buffer = vec![0u8; 1 << 20];
                loop {
                    let n = stream
                        .read(&mut buffer)
                        .await
                        .expect("read the stored file");
                    if n == 0 {
                        break;
                    }
                    hash.update(&buffer[..n]);
                }
            }
            Backend::Embedded => {
                let path = self
                    .names
                    .data_dir
                    .join("files")
                    .join(embedded_bucket(files))
                    .join(&id[22..])
                    .join(id);
                let mut file = std::fs::File::open(path).expect("open the stored file");
                std::io::copy(&mut file, &mut hash).expect("read the stored file");
            }
        }
        hex(&hash.finalize())
    }

    /// Drops the group's MongoDB databases (cluster): a test that stored
    /// hundreds of MB gives the suite's in-memory SecantusDB its room back.
    pub async fn drop_databases(&self) {
        if self.options.backend != Backend::Cluster {
            return;
        }
        let client = self.mongo().await;
        for db in [
            &self.names.videos_db,
            &self.names.mp3s_db,
            &self.names.waveforms_db,
            &self.names.jobs_db,
        ] {
            let _ = client.database(db).drop().await;
        }
    }

    /// Resumable uploads the node keeps a record of, whichever backend.
    pub async fn upload_records(&self) -> u64 {
        match self.options.backend {
            Backend::Cluster => self.count(&self.names.jobs_db, "uploads").await,
            Backend::Embedded => self.sql_scalar("SELECT COUNT(*) FROM uploads") as u64,
        }
    }

    /// Asserts no file of a kind is kept: no GridFS file and no stray
    /// chunk (cluster); no file record, no file on disk and no partial
    /// write (embedded).
    pub async fn assert_no_files(&self, files: Files, why: &str) {
        let (ids, pieces) = self.file_ids(files).await;
        assert!(ids.is_empty(), "{why}: {files:?} files left: {ids:?}");
        assert!(
            pieces.is_empty(),
            "{why}: {files:?} pieces left: {pieces:?}"
        );
    }

    /// Whether file `id` (hex) of a kind is stored, whichever backend.
    pub async fn has_file(&self, files: Files, id: &str) -> bool {
        self.file_ids(files).await.0.contains(id)
    }

    /// Removes a stored file the way another node (cluster: its GridFS
    /// delete) or a failing disk (embedded: the file vanishes) would,
    /// without this node knowing.
    pub async fn remove_file_behind_its_back(&self, files: Files, id: &str) {
        match self.options.backend {
            Backend::Cluster => {
                let oid = mongodb::bson::oid::ObjectId::parse_str(id).expect("oid");
                self.mongo()
                    .await
                    .database(self.files_db(files))
                    .gridfs_bucket(None)
                    .delete(Bson::ObjectId(oid))
                    .await
                    .expect("delete behind the node's back");
            }
            Backend::Embedded => {
                let dir = self
                    .names
                    .data_dir
                    .join("files")
                    .join(embedded_bucket(files))
                    .join(&id[22..]);
                std::fs::remove_file(dir.join(id)).expect("remove the file");
            }
        }
    }

    /// Files of a kind (hex ids, finished) and the ids their stored pieces
    /// belong to (GridFS chunks; embedded: files on disk and `partial:`
    /// writes), whichever backend.
    pub async fn file_ids(&self, files: Files) -> (HashSet<String>, HashSet<String>) {
        match self.options.backend {
            Backend::Cluster => {
                let db = self.files_db(files);
                let bucket = files.gridfs_bucket();
                let docs = self.documents(db, &format!("{bucket}.files")).await;
                let chunks = self
                    .fields(
                        db,
                        &format!("{bucket}.chunks"),
                        Some(doc! { "files_id": 1 }),
                    )
                    .await;
                let ids = docs
                    .iter()
                    .filter_map(|f| f.get_object_id("_id").ok().map(|id| id.to_hex()))
                    .collect();
                let owners = chunks
                    .iter()
                    .filter_map(|c| c.get_object_id("files_id").ok().map(|id| id.to_hex()))
                    .collect();
                (ids, owners)
            }
            Backend::Embedded => {
                let bucket = embedded_bucket(files);
                let ids = self
                    .sql_rows(&format!(
                        "SELECT json_quote(id) FROM files WHERE bucket = '{bucket}'"
                    ))
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                let root = self.names.data_dir.join("files");
                let mut pieces = HashSet::new();
                for dir in walk(&root.join(bucket)) {
                    pieces.insert(dir);
                }
                for partial in walk(&root.join("partial")) {
                    pieces.insert(format!("partial:{partial}"));
                }
                if files == Files::Videos {
                    for resumable in walk(&root.join("resumable")) {
                        pieces.insert(format!("resumable:{resumable}"));
                    }
                }
                (ids, pieces)
            }
        }
    }

    /// The state after a batch has settled, checked against what the issue
    /// asks: every job final as expected, one audio file per done job and
    /// none for failed ones, no orphan files or chunks, one mail per job,
    /// the work queues empty and the dead-letter queue holding exactly the
    /// failed jobs. Returns (done, failed).
    pub async fn assert_settled(
        &self,
        email: &str,
        jobs: &[Value],
        expect_failed: &[&str],
    ) -> (usize, usize) {
        let (done, failed, resent) = self.check_settled(email, jobs, expect_failed, 0).await;
        assert_eq!(resent, 0);
        (done, failed)
    }

    /// As `assert_settled`, after `kills` kill -9s. A node killed between
    /// the SMTP server's accept and the `mailed` mark sends that mail again,
    /// with the same Message-ID: still one message per job, but up to one
    /// raw re-send per kill. Returns (done, failed, re-sent mails).
    pub async fn assert_settled_despite_kills(
        &self,
        email: &str,
        jobs: &[Value],
        expect_failed: &[&str],
        kills: usize,
    ) -> (usize, usize, usize) {
        self.check_settled(email, jobs, expect_failed, kills).await
    }

    async fn check_settled(
        &self,
        email: &str,
        jobs: &[Value],
        expect_failed: &[&str],
        max_resent: usize,
    ) -> (usize, usize, usize) {
        let failed: Vec<&Value> = jobs.iter().filter(|j| j["state"] == "failed").collect();
        let done: Vec<&Value> = jobs.iter().filter(|j| j["state"] == "done").collect();
        for job in &failed {
            assert!(
                expect_failed
                    .iter()
                    .any(|f| job["filename"].as_str().is_some_and(|n| n.starts_with(f))),
                "job failed unexpectedly: {job}\n{}",
                self.log_tail()
            );
        }
        assert_eq!(done.len() + failed.len(), jobs.len());

        // The audio and its waveform, each under the job's audio id.
        for files in [Files::Audio, Files::Waveforms] {
            let (ids, pieces) = self.file_ids(files).await;
            assert_eq!(
                ids.len(),
                done.len(),
                "one {files:?} file per done job, none for failed ones"
            );
            for job in &done {
                let fid = job["mp3_fid"].as_str().expect("done job has mp3_fid");
                assert!(ids.contains(fid), "missing {files:?} {fid}");
            }
            assert!(
                pieces.is_subset(&ids),
                "orphan {files:?} pieces: {pieces:?}"
            );
        }

        let (video_ids, video_pieces) = self.file_ids(Files::Videos).await;
        assert_eq!(
            video_ids.len(),
            jobs.len(),
            "one stored video per job, no orphans"
        );
        assert!(
            video_pieces.is_subset(&video_ids),
            "orphan video pieces: {video_pieces:?}"
        );

        mails_to(email, jobs.len()).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mails = read_mails_to(email);
        let ids: HashSet<String> = mails.iter().filter_map(|m| message_id(m)).collect();
        assert_eq!(ids.len(), jobs.len(), "one mail (Message-ID) per job");
        for job in jobs {
            let id = job["job_id"].as_str().unwrap_or_default();
            assert!(ids.iter().any(|m| m.contains(id)), "no mail for job {id}");
        }
        let resent = mails.len() - ids.len();
        assert!(resent <= max_resent, "{resent} mails sent twice");

        assert_eq!(
            self.queue_depth(&self.names.video_queue).await,
            0,
            "video queue drained"
        );
        assert_eq!(
            self.queue_depth(&self.names.mp3_queue).await,
            0,
            "mp3 queue drained"
        );
        assert_eq!(
            self.queue_depth(&self.names.dead_letter_queue).await,
            failed.len() as u32,
            "dead-letter queue holds exactly the failed jobs"
        );
        (done.len(), failed.len(), resent)
    }
}

/// The embedded backend's name of a bucket (its folder and `files.bucket`).
fn embedded_bucket(files: Files) -> &'static str {
    match files {
        Files::Videos => "videos",
        Files::Audio => "audio",
        Files::Waveforms => "waveforms",
        Files::Segments => "segments",
        Files::SegmentWaveforms => "segment_waveforms",
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 (hex) of a local file.
pub fn file_sha256(path: &Path) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    let mut file = std::fs::File::open(path).expect("open");
    std::io::copy(&mut file, &mut hash).expect("read");
    hex(&hash.finalize())
}

/// Names of the files anywhere below `dir` (none if it does not exist).
fn walk(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return names;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            names.extend(walk(&path));
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            names.push(name.to_owned());
        }
    }
    names
}
