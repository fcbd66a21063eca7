//! `file://`: servers listed in a file, re-read when it changes (brpc's `FileNamingService`).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::list::{dedupe, split_entry};
use super::{BoxFuture, NamingService, ServerNode};
use crate::{errno, Error, Status};

/// The shortest poll interval: shorter ones are raised to it, so a service never busy-loops.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// How far apart two writes to a file may be and still leave the same modification time on
/// the coarsest common file systems (FAT keeps 2 s). While the file's mtime is this close to
/// the moment it was last read, its content is re-read on every poll even if its metadata
/// looks unchanged, so a same-length edit within one mtime tick is not missed.
const MTIME_SLACK: Duration = Duration::from_secs(2);

/// Servers listed in a file, one per line, re-read when the file changes:
/// `file:///etc/brisk/servers` (absolute) or `file://conf/servers` (relative to the working
/// directory).
///
/// ```text
/// # This line is ignored
/// 10.24.234.17:8080 tag1  # a comment
/// 10.24.234.17:8090 tag2  # an instance different from the one on the last line
/// 10.24.234.18:8080
/// backend.local:8080
/// ```
///
/// Each line is `host:port`, optionally followed by whitespace and a tag; `#` starts a comment
/// (a whole line or the end of one); blank lines are skipped. As in brpc, a bad line (no port,
/// a bad port, an empty host, a hostname that does not resolve) is logged with
/// `tracing::warn!` (file, line number, reason) and skipped. Hostnames resolve to their first
/// address. Lines with the same address and tag are kept once.
///
/// The first [`next`](NamingService::next) reads the file and fails if it cannot be read
/// ([`errno::EINVAL`], or [`errno::EPERM`] when permission is denied, with the path and the
/// I/O error). Later calls look at the file every
/// [`DEFAULT_POLL_INTERVAL`](FileNamingService::DEFAULT_POLL_INTERVAL) (100 ms) and return
/// when the list of servers it gives differs from the last one returned (edits to comments,
/// or rewrites with the same servers, return nothing). If the file disappears or becomes
/// unreadable, a later call fails after one poll interval; the following call waits for the
/// file to come back.
///
/// ```no_run
/// use brisk::naming::{FileNamingService, NamingService};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), brisk::Status> {
/// let mut ns = FileNamingService::new("/etc/brisk/servers")?;
/// let servers = ns.next().await?; // the file as it is now
/// println!("{} servers", servers.len());
/// let servers = ns.next().await?; // after the next edit that changes the list
/// println!("now {} servers", servers.len());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FileNamingService {
    path: PathBuf,
    poll_interval: Duration,
    /// What the file held when last read; `None` before the first read and after an error.
    seen: Option<Seen>,
    /// The last list returned, sorted (so that reordered lines do not count as a change).
    last: Option<Vec<ServerNode>>,
    /// Whether the first `next` has completed.
    started: bool,
}

/// The file as last read.
#[derive(Debug)]
struct Seen {
    stamp: Stamp,
    content: Vec<u8>,
    /// When that read started.
    read_at: SystemTime,
}

/// The metadata that tells whether a file may have changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    /// Inode and device: a file replaced by a rename is a different file.
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
        }
    }
}

impl FileNamingService {
    /// How often the file is looked at for changes, unless
    /// [`with_poll_interval`](FileNamingService::with_poll_interval) says otherwise (brpc's
    /// `FileWatcher` is polled every 100 ms too).
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);

    /// The service for what follows `file://`: a path, absolute (`file:///etc/servers` gives
    /// `/etc/servers`) or relative to the working directory (`file://conf/servers`).
    ///
    /// Only an empty path is refused here ([`errno::EINVAL`]); the file is read by the first
    /// [`next`](NamingService::next).
    ///
    /// ```
    /// use brisk::naming::FileNamingService;
    ///
    /// let ns = FileNamingService::new("/etc/brisk/servers").unwrap();
    /// assert_eq!(ns.path(), std::path::Path::new("/etc/brisk/servers"));
    /// assert!(FileNamingService::new("").is_err());
    /// ```
    pub fn new(rest: &str) -> Result<Self, Error> {
        if rest.trim().is_empty() {
            return Err(Error::invalid(
                "file:// names no file (expected file:///absolute/path or file://relative/path)",
            ));
        }
        Ok(FileNamingService {
            path: PathBuf::from(rest),
            poll_interval: Self::DEFAULT_POLL_INTERVAL,
            seen: None,
            last: None,
            started: false,
        })
    }

    /// Looks at the file every `interval` instead of every
    /// [`DEFAULT_POLL_INTERVAL`](FileNamingService::DEFAULT_POLL_INTERVAL) (intervals under a
    /// millisecond are raised to one).
    ///
    /// ```
    /// use std::time::Duration;
    /// use brisk::naming::FileNamingService;
    ///
    /// let ns = FileNamingService::new("servers.txt")
    ///     .unwrap()
    ///     .with_poll_interval(Duration::from_secs(1));
    /// # drop(ns);
    /// ```
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(MIN_POLL_INTERVAL);
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks at the file once: `Some(list)` when its servers differ from the last list
    /// returned. State changes only after the last `await`, so dropping the future is safe.
    async fn poll(&mut self) -> Result<Option<Vec<ServerNode>>, Status> {
        let previous = self
            .seen
            .as_ref()
            .map(|seen| (seen.stamp.clone(), seen.read_at));
        let path = self.path.clone();
        let read = tokio::task::spawn_blocking(move || read_if_changed(&path, previous))
            .await
            .map_err(|e| {
                Status::internal(format!(
                    "file://{}: the reading task failed: {e}",
                    self.path.display()
                ))
            })?;
        let read = match read {
            Ok(read) => read,
            Err(e) => {
                // Read it afresh once it is back.
                self.seen = None;
                return Err(io_status(&self.path, &e));
            }
        };
        let Some((stamp, content, read_at)) = read else {
            return Ok(None);
        };
        if let Some(seen) = &mut self.seen {
            if seen.content == content {
                seen.stamp = stamp;
                seen.read_at = read_at;
                return Ok(None);
            }
        }
        let nodes = parse_lines(&self.path, &String::from_utf8_lossy(&content)).await;
        self.seen = Some(Seen {
            stamp,
            content,
            read_at,
        });
        let mut sorted = nodes.clone();
        sorted.sort();
        if self.last.as_ref() == Some(&sorted) {
            return Ok(None);
        }
        self.last = Some(sorted);
        Ok(Some(nodes))
    }
}

impl NamingService for FileNamingService {
    fn next(&mut self) -> BoxFuture<'_, Result<Vec<ServerNode>, Status>> {
        Box::pin(async move {
            if !self.started {
                let first = self.poll().await;
                self.started = true;
                // Nothing was returned before, so a successful read is always `Some`.
                if let Some(nodes) = first? {
                    return Ok(nodes);
                }
            }
            loop {
                // Waiting first also spaces out errors: one per interval at most.
                tokio::time::sleep(self.poll_interval).await;
                if let Some(nodes) = self.poll().await? {
                    return Ok(nodes);
                }
            }
        })
    }
}

/// A read of the file: its stamp, its content and when the read started.
type Read = (Stamp, Vec<u8>, SystemTime);

/// Reads the file unless its metadata shows it unchanged since `previous` (its stamp and the
/// time of that read).
fn read_if_changed(path: &Path, previous: Option<(Stamp, SystemTime)>) -> io::Result<Option<Read>> {
    let stamp = Stamp::of(&std::fs::metadata(path)?);
    if let Some((old, read_at)) = previous {
        // A write within MTIME_SLACK of the last read may have left mtime and length as they
        // were; only once the file has been quiet for longer is the metadata to be trusted.
        let quiet = stamp
            .modified
            .and_then(|m| m.checked_add(MTIME_SLACK))
            .is_some_and(|settled| settled <= read_at);
        if old == stamp && quiet {
            return Ok(None);
        }
    }
    let read_at = SystemTime::now();
    let content = std::fs::read(path)?;
    Ok(Some((stamp, content, read_at)))
}

/// The lines of a file's content that name a server (comments, blank lines and a BOM
/// dropped), numbered from 1.
pub(crate) fn server_lines(content: &str) -> impl Iterator<Item = (usize, &str)> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    content.lines().enumerate().filter_map(|(index, line)| {
        let line = line.split_once('#').map_or(line, |(entry, _)| entry).trim();
        (!line.is_empty()).then_some((index + 1, line))
    })
}

/// The servers of a file's content; bad lines are logged and skipped.
async fn parse_lines(path: &Path, content: &str) -> Vec<ServerNode> {
    let mut nodes = Vec::new();
    for (line_no, line) in server_lines(content) {
        if let Err(reason) = split_entry(line) {
            tracing::warn!(
                file = %path.display(),
                line = line_no,
                "skipping bad server line `{line}`: {reason}"
            );
            continue;
        }
        match super::parse_entry(line).await {
            Ok(node) => nodes.push(node),
            Err(e) => tracing::warn!(
                file = %path.display(),
                line = line_no,
                "skipping server line `{line}`: {}",
                e.message()
            ),
        }
    }
    dedupe(nodes)
}

fn io_status(path: &Path, err: &io::Error) -> Status {
    let code = match err.kind() {
        io::ErrorKind::PermissionDenied => errno::EPERM,
        _ => errno::EINVAL,
    };
    Status::new(
        code,
        format!(
            "file://{}: cannot read the server list: {err}",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::time::{timeout, Instant};

    use super::*;

    /// A file in the temporary directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(content: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let name = format!(
                "brisk-file-naming-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let file = TempFile(std::env::temp_dir().join(name));
            file.write_in_place(content);
            file
        }

        /// Replaces the content at once (written aside, then renamed over), as deployment
        /// tools should: a reader never sees half a file.
        fn write(&self, content: &str) {
            let aside = self.0.with_extension("new");
            std::fs::write(&aside, content).unwrap();
            std::fs::rename(&aside, &self.0).unwrap();
        }

        /// Overwrites the file where it is (same inode), as an editor may.
        fn write_in_place(&self, content: &str) {
            std::fs::write(&self.0, content).unwrap();
        }

        fn service(&self) -> FileNamingService {
            FileNamingService::new(self.0.to_str().unwrap())
                .unwrap()
                .with_poll_interval(Duration::from_millis(20))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn node(addr: &str, tag: &str) -> ServerNode {
        ServerNode::with_tag(addr.parse().unwrap(), tag)
    }

    #[tokio::test]
    async fn parses_lines_tags_comments_and_skips_bad_lines() {
        let file = TempFile::new(
            "\u{feff}# servers\n\
             127.0.0.1:8000 tag1  # a comment\n\
             \n\
             \t  \n\
             127.0.0.1:8001\ttag two\r\n\
             127.0.0.1            # no port\n\
             :9000 empty host\n\
             127.0.0.1:abc\n\
             no-such-host.invalid:80\n\
             localhost:8002\n\
             127.0.0.1:8000 tag1\n\
             127.0.0.1:8000 other\n\
             #127.0.0.1:9999\n",
        );
        let nodes = file.service().next().await.unwrap();
        assert_eq!(nodes.len(), 4, "{nodes:?}");
        assert_eq!(nodes[0], node("127.0.0.1:8000", "tag1"));
        assert_eq!(nodes[1], node("127.0.0.1:8001", "tag two"));
        assert!(nodes[2].addr.ip().is_loopback() && nodes[2].addr.port() == 8002);
        assert_eq!(nodes[2].tag, "");
        assert_eq!(nodes[3], node("127.0.0.1:8000", "other"));
    }

    #[tokio::test]
    async fn empty_file_gives_empty_list() {
        let file = TempFile::new("# nothing yet\n");
        assert_eq!(file.service().next().await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn missing_file_is_einval_naming_the_path() {
        let path =
            std::env::temp_dir().join(format!("brisk-file-naming-missing-{}", std::process::id()));
        let mut ns = FileNamingService::new(path.to_str().unwrap()).unwrap();
        let err = ns.next().await.unwrap_err();
        assert_eq!(err.code(), errno::EINVAL);
        assert!(err.message().contains(path.to_str().unwrap()), "{err}");
    }

    #[test]
    fn new_takes_absolute_and_relative_paths() {
        assert_eq!(
            FileNamingService::new("/etc/servers").unwrap().path(),
            Path::new("/etc/servers")
        );
        assert_eq!(
            FileNamingService::new("conf/servers").unwrap().path(),
            Path::new("conf/servers")
        );
        assert_eq!(
            FileNamingService::new(" ").unwrap_err().code(),
            errno::EINVAL
        );
        let ns = FileNamingService::new("x").unwrap();
        assert_eq!(ns.poll_interval, FileNamingService::DEFAULT_POLL_INTERVAL);
        let ns = ns.with_poll_interval(Duration::ZERO);
        assert_eq!(ns.poll_interval, MIN_POLL_INTERVAL);
    }

    // Tokio's clock, paused: the test moves time (sleeps and timeouts auto-advance it).
    #[tokio::test(start_paused = true)]
    async fn edit_while_pending_returns_new_list_quickly() {
        let file = TempFile::new("127.0.0.1:1001\n");
        // The default interval, as a channel would use it.
        let mut ns = FileNamingService::new(file.0.to_str().unwrap()).unwrap();
        assert_eq!(ns.next().await.unwrap(), vec![node("127.0.0.1:1001", "")]);
        let start = Instant::now();
        let (next, ()) = tokio::join!(timeout(Duration::from_secs(1), ns.next()), async {
            // Between two polls (every 100 ms), so no read sees it half written.
            tokio::time::sleep(Duration::from_millis(150)).await;
            // Same file, same length, same second: only the content tells.
            file.write_in_place("127.0.0.1:1002\n");
        });
        let nodes = next.expect("edit not seen within 1 s").unwrap();
        assert_eq!(nodes, vec![node("127.0.0.1:1002", "")]);
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    // Tokio's clock, paused: the test moves time (sleeps and timeouts auto-advance it).
    #[tokio::test(start_paused = true)]
    async fn rewrites_that_keep_the_servers_do_not_return() {
        let file = TempFile::new("127.0.0.1:1 a\n127.0.0.1:2\n");
        let mut ns = file.service();
        ns.next().await.unwrap();
        let (next, ()) = tokio::join!(timeout(Duration::from_millis(500), ns.next()), async {
            tokio::time::sleep(Duration::from_millis(60)).await;
            file.write("127.0.0.1:1 a\n127.0.0.1:2\n");
            tokio::time::sleep(Duration::from_millis(60)).await;
            file.write("# reordered, commented\n127.0.0.1:2\n\n127.0.0.1:1 a # same\n");
            tokio::time::sleep(Duration::from_millis(60)).await;
            file.write("127.0.0.1:2\n127.0.0.1:1 a\n127.0.0.1:2\n");
        });
        assert!(next.is_err(), "no change expected, got {next:?}");
        // A real change afterwards is still seen.
        file.write("127.0.0.1:1 b\n");
        let nodes = timeout(Duration::from_secs(1), ns.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(nodes, vec![node("127.0.0.1:1", "b")]);
    }

    // Tokio's clock, paused: the test moves time (sleeps and timeouts auto-advance it).
    #[tokio::test(start_paused = true)]
    async fn deleted_file_errors_then_recovers() {
        let file = TempFile::new("127.0.0.1:1\n");
        let mut ns = file.service();
        ns.next().await.unwrap();
        std::fs::remove_file(&file.0).unwrap();
        let err = timeout(Duration::from_secs(1), ns.next())
            .await
            .expect("a deleted file must give an error")
            .unwrap_err();
        assert_eq!(err.code(), errno::EINVAL);
        assert!(err.message().contains(file.0.to_str().unwrap()), "{err}");

        // Still missing: another error, but not before one poll interval.
        let start = Instant::now();
        assert!(ns.next().await.is_err());
        assert!(start.elapsed() >= Duration::from_millis(20));

        // Back with the same servers: nothing new to return.
        file.write("127.0.0.1:1\n");
        assert!(timeout(Duration::from_millis(200), ns.next())
            .await
            .is_err());
        // Back with different servers.
        file.write("127.0.0.1:2\n");
        let nodes = timeout(Duration::from_secs(1), ns.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(nodes, vec![node("127.0.0.1:2", "")]);
    }

    #[tokio::test]
    async fn from_url_builds_a_file_service() {
        let file = TempFile::new("127.0.0.1:7 t\n");
        let mut ns = crate::naming::from_url(&format!("file://{}", file.0.display())).unwrap();
        assert_eq!(ns.next().await.unwrap(), vec![node("127.0.0.1:7", "t")]);
    }

    #[test]
    fn unchanged_metadata_is_trusted_only_once_the_file_is_quiet() {
        let file = TempFile::new("127.0.0.1:1\n");
        let (stamp, _, read_at) = read_if_changed(&file.0, None).unwrap().unwrap();
        // Just written: re-read even though nothing seems to have changed.
        assert!(read_if_changed(&file.0, Some((stamp.clone(), read_at)))
            .unwrap()
            .is_some());
        // Read long after the last write: the metadata is trusted.
        let later = stamp.modified.unwrap() + MTIME_SLACK;
        assert!(read_if_changed(&file.0, Some((stamp, later)))
            .unwrap()
            .is_none());
    }
}
